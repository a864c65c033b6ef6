"""Probe pods on the local node: namespaces and pods the network-policy scenarios call from,
and `kubectl exec` of tests/e2e/pod_probe.py inside them (or inside the proxy's pods).

The pods run the node's proxy image (the only image its registry holds that has Python) with
a command of ours instead of the proxy; `kubectl exec` goes through the API server and the
kubelet, so no NetworkPolicy stands between the test and the pod it drives, only between
that pod and what it calls.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubernetes.client.exceptions import ApiException

from tests.e2e.e2e_kube import Kube

PROBE_SOURCE = (Path(__file__).parent / "pod_probe.py").read_text()
SLEEP = ["python", "-c", "import time; time.sleep(3600)"]
EXEC_TIMEOUT_S = 60
READY_TIMEOUT_S = 120


def _env_without_proxies() -> dict[str, str]:
    """kubectl honours HTTP(S)_PROXY: the API server is in the namespace, never behind one."""
    return {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}


@dataclass
class ProbePods:
    """Namespaces and pods made for probing, removed again by `cleanup`."""

    kube: Kube
    kubeconfig: str
    image: str
    kubectl: str = field(
        default_factory=lambda: str(Path(os.environ["LLM_GATEWAY_E2E_BIN"]) / "kubectl")
    )
    made_namespaces: list[str] = field(default_factory=list)

    def namespace(self, name: str, labels: dict[str, str] | None = None) -> None:
        """Create namespace `name` (kept if it exists: then only `labels` are set on it),
        and wait until its default ServiceAccount exists (pods are refused before)."""
        body = {"metadata": {"name": name, "labels": labels or {}}}
        try:
            self.kube.core.create_namespace(body)
            self.made_namespaces.append(name)
        except ApiException as exc:
            if exc.status != 409:
                raise
            if labels:
                self.kube.core.patch_namespace(name, {"metadata": {"labels": labels}})
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            accounts = self.kube.core.list_namespaced_service_account(name).items
            if any(account.metadata.name == "default" for account in accounts):
                return
            time.sleep(0.3)
        raise AssertionError(f"namespace {name} has no default ServiceAccount after 60 s")

    def label_namespace(self, name: str, key: str, value: str | None) -> float:
        """Set (or, with None, remove) one label; returns the wall-clock time of the write."""
        self.kube.core.patch_namespace(name, {"metadata": {"labels": {key: value}}})
        return time.time()

    def pod(
        self,
        namespace: str,
        name: str,
        labels: dict[str, str] | None = None,
        command: list[str] | None = None,
        port: int | None = None,
    ) -> None:
        """Start one probe pod (no token, nothing mounted, gone at once when deleted)."""
        container: dict[str, Any] = {
            "name": "probe",
            "image": self.image,
            "command": command or SLEEP,
            "securityContext": {
                "allowPrivilegeEscalation": False,
                "capabilities": {"drop": ["ALL"]},
                "runAsNonRoot": True,
                "readOnlyRootFilesystem": True,
            },
        }
        if port is not None:
            container["ports"] = [{"containerPort": port, "protocol": "TCP"}]
        body = {
            "metadata": {"name": name, "labels": labels or {}},
            "spec": {
                "automountServiceAccountToken": False,
                "terminationGracePeriodSeconds": 0,
                "containers": [container],
            },
        }
        self.kube.core.create_namespaced_pod(namespace, body)

    def service(self, namespace: str, name: str, selector: dict[str, str], port: int) -> str:
        """A ClusterIP Service on `port` for the pods `selector` picks; returns its IP."""
        body = {
            "metadata": {"name": name},
            "spec": {"selector": selector, "ports": [{"port": port, "protocol": "TCP"}]},
        }
        created = self.kube.core.create_namespaced_service(namespace, body)
        return str(created.spec.cluster_ip)

    def wait_running(self, where: list[tuple[str, str]]) -> dict[str, str]:
        """Wait until every (namespace, pod) runs and is ready; returns pod name → IP."""
        deadline = time.monotonic() + READY_TIMEOUT_S
        ips: dict[str, str] = {}
        while time.monotonic() < deadline:
            for namespace, name in where:
                pod = self.kube.core.read_namespaced_pod(name, namespace)
                conditions = {c.type: c.status for c in pod.status.conditions or []}
                if conditions.get("Ready") == "True" and pod.status.pod_ip:
                    ips[name] = pod.status.pod_ip
            if len(ips) == len(where):
                return ips
            time.sleep(0.5)
        missing = sorted({name for _, name in where} - set(ips))
        raise AssertionError(f"probe pods not ready after {READY_TIMEOUT_S}s: {missing}")

    def kubectl_run(
        self, namespace: str, name: str, command: list[str]
    ) -> subprocess.CompletedProcess[str]:
        """`kubectl run --rm -i` of `command` in the image, as the smoke output runs it."""
        return subprocess.run(
            [
                self.kubectl, "--kubeconfig", self.kubeconfig, "run", name, "-n", namespace,
                "--rm", "-i", "--restart=Never", "--image", self.image, "--command", "--",
                *command,
            ],
            capture_output=True,
            text=True,
            timeout=EXEC_TIMEOUT_S * 2,
            check=False,
            env=_env_without_proxies(),
        )  # fmt: skip

    def _exec(self, namespace: str, pod: str, args: list[str]) -> list[str]:
        return [
            self.kubectl, "--kubeconfig", self.kubeconfig, "exec", "-n", namespace, pod,
            "--", "python", "-c", PROBE_SOURCE, *args,
        ]  # fmt: skip

    def probe(self, namespace: str, pod: str, *args: str) -> dict[str, Any]:
        """Run pod_probe.py with `args` inside `pod`; its last JSON line."""
        done = subprocess.run(
            self._exec(namespace, pod, list(args)),
            capture_output=True,
            text=True,
            timeout=EXEC_TIMEOUT_S,
            check=False,
            env=_env_without_proxies(),
        )
        lines = done.stdout.strip().splitlines()
        if done.returncode != 0 or not lines:
            raise AssertionError(
                f"probe {args} in {namespace}/{pod} exited {done.returncode}: {done.stderr[-2000:]}"
            )
        result: dict[str, Any] = json.loads(lines[-1])
        return result

    def probe_loop(self, namespace: str, pod: str, *args: str) -> subprocess.Popen[str]:
        """Start a pod_probe.py `until` loop in `pod`; returns once the loop runs (it has
        printed its `started` line). Read the result with `loop_result`."""
        proc = subprocess.Popen(
            self._exec(namespace, pod, list(args)),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=_env_without_proxies(),
        )
        assert proc.stdout is not None
        first = proc.stdout.readline()
        if "started" not in first:
            proc.kill()
            raise AssertionError(f"probe loop in {namespace}/{pod} did not start: {first!r}")
        return proc

    @staticmethod
    def loop_result(proc: subprocess.Popen[str], timeout: float) -> dict[str, Any]:
        try:
            stdout, stderr = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            stdout, stderr = proc.communicate()
        lines = stdout.strip().splitlines()
        if proc.returncode != 0 or not lines:
            raise AssertionError(f"probe loop exited {proc.returncode}: {stderr[-2000:]}")
        result: dict[str, Any] = json.loads(lines[-1])
        return result

    def cleanup(self) -> None:
        """Delete the namespaces made here, and wait (bounded) until they are gone."""
        for name in self.made_namespaces:
            try:
                self.kube.core.delete_namespace(name)
            except ApiException as exc:
                if exc.status != 404:
                    raise
        for name in self.made_namespaces:
            self.kube.wait_gone("Namespace", name, timeout=120)
