"""A real Prometheus (Debian's package) on the e2e node, configured the way the Prometheus
Operator would configure it from the objects the stack put in the cluster.

No operator runs here; instead this module reads the stack's PodMonitor and PrometheusRule
back from the API server and writes what the operator (v0.85) generates from them:

- a scrape job per PodMonitor endpoint, with the operator's relabelling: keep pods whose
  labels match the monitor's selector and whose container port has the endpoint's name
  (or number), drop Failed/Succeeded pods, set the target labels `namespace`, `pod`,
  `container`, `endpoint` and `job` (`<namespace>/<monitor name>`); the endpoint's path
  and interval;
- the PrometheusRule's `spec.groups` as a rules file.

One substitution: Debian's prometheus 2.42 is built without Kubernetes discovery
(`field kubernetes_sd_configs not found in type config.ScrapeConfig`), so `PodDiscovery`
plays `kubernetes_sd_configs` role `pod`: every second it lists the pods of the
monitor's namespaces from the API server and writes, per container port, the target
`podIP:port` with the same `__meta_kubernetes_*` labels that role sets, to a file_sd file
that Prometheus watches. The operator's relabel rules then run in Prometheus unchanged.

Not reproduced: the operator's `prometheus`/`prometheus_replica` external labels, scrape
classes, TLS/auth options (the monitor sets none) and its reload on change (the rules are
read once, when the fixture starts Prometheus). Prometheus runs inside the node's network
namespace (where the tests run) and listens on its loopback only.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import httpx
import yaml

from tests.support.pulumi_render import REPO_ROOT

PORT = 19090
EVALUATION_INTERVAL = "5s"
GROUP, VERSION = "monitoring.coreos.com", "v1"


class KubeClient(Protocol):
    """What pod discovery reads: a CoreV1Api (the e2e's Kube, or a test's stand-in)."""

    @property
    def core(self) -> Any: ...


def _sanitize(label: str) -> str:
    return re.sub(r"[^a-zA-Z0-9_]", "_", label)


def monitor_namespaces(pod_monitor: dict[str, Any]) -> list[str]:
    spec = pod_monitor["spec"]
    names: list[str] = spec.get("namespaceSelector", {}).get("matchNames") or [
        pod_monitor["metadata"]["namespace"]
    ]
    return names


def scrape_jobs(pod_monitor: dict[str, Any], sd_file: Path) -> list[dict[str, Any]]:
    """The scrape configs the operator derives from one PodMonitor (discovery: see above)."""
    meta, spec = pod_monitor["metadata"], pod_monitor["spec"]
    keep = [
        {
            "action": "keep",
            "source_labels": [
                f"__meta_kubernetes_pod_label_{_sanitize(name)}",
                f"__meta_kubernetes_pod_labelpresent_{_sanitize(name)}",
            ],
            "regex": f"({re.escape(value)});true",
        }
        for name, value in sorted(spec["selector"].get("matchLabels", {}).items())
    ]
    jobs = []
    for index, endpoint in enumerate(spec["podMetricsEndpoints"]):
        if "port" in endpoint:
            port_rule = {
                "action": "keep",
                "source_labels": ["__meta_kubernetes_pod_container_port_name"],
                "regex": endpoint["port"],
            }
            endpoint_label = endpoint["port"]
        else:
            port_rule = {
                "action": "keep",
                "source_labels": ["__meta_kubernetes_pod_container_port_number"],
                "regex": str(endpoint["portNumber"]),
            }
            endpoint_label = str(endpoint["portNumber"])
        job = {
            "job_name": f"podMonitor/{meta['namespace']}/{meta['name']}/{index}",
            "honor_labels": False,
            "file_sd_configs": [{"files": [str(sd_file)], "refresh_interval": "5s"}],
            "metrics_path": endpoint.get("path", "/metrics"),
            "relabel_configs": [
                *keep,
                port_rule,
                {
                    "action": "drop",
                    "source_labels": ["__meta_kubernetes_pod_phase"],
                    "regex": "(Failed|Succeeded)",
                },
                {"source_labels": ["__meta_kubernetes_namespace"], "target_label": "namespace"},
                {
                    "source_labels": ["__meta_kubernetes_pod_container_name"],
                    "target_label": "container",
                },
                {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"},
                {"target_label": "job", "replacement": f"{meta['namespace']}/{meta['name']}"},
                {"target_label": "endpoint", "replacement": endpoint_label},
            ],
        }
        if "interval" in endpoint:
            job["scrape_interval"] = endpoint["interval"]
        jobs.append(job)
    return jobs


def pod_targets(pods: list[Any]) -> list[dict[str, Any]]:
    """What kubernetes_sd role `pod` yields: a target per container port of each pod with
    an IP, labelled with the pod's meta labels (kubernetes/discovery/pod.go)."""
    targets = []
    for pod in pods:
        ip = pod.status.pod_ip
        if not ip:
            continue
        meta: dict[str, str] = {
            "__meta_kubernetes_namespace": pod.metadata.namespace,
            "__meta_kubernetes_pod_name": pod.metadata.name,
            "__meta_kubernetes_pod_ip": ip,
            "__meta_kubernetes_pod_phase": pod.status.phase or "",
            "__meta_kubernetes_pod_node_name": pod.spec.node_name or "",
        }
        for name, value in (pod.metadata.labels or {}).items():
            meta[f"__meta_kubernetes_pod_label_{_sanitize(name)}"] = value
            meta[f"__meta_kubernetes_pod_labelpresent_{_sanitize(name)}"] = "true"
        for container in pod.spec.containers:
            for port in container.ports or []:
                labels = {
                    **meta,
                    "__meta_kubernetes_pod_container_name": container.name,
                    "__meta_kubernetes_pod_container_port_name": port.name or "",
                    "__meta_kubernetes_pod_container_port_number": str(port.container_port),
                    "__meta_kubernetes_pod_container_port_protocol": port.protocol or "TCP",
                }
                targets.append({"targets": [f"{ip}:{port.container_port}"], "labels": labels})
    return targets


@dataclass
class PodDiscovery:
    """Lists the pods of some namespaces every second into a file_sd file (atomically)."""

    kube: KubeClient
    namespaces: list[str]
    sd_file: Path
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def refresh(self) -> None:
        pods = [
            pod
            for namespace in self.namespaces
            for pod in self.kube.core.list_namespaced_pod(namespace).items
        ]
        scratch = self.sd_file.with_suffix(".tmp")
        scratch.write_text(json.dumps(pod_targets(pods)))
        os.replace(scratch, self.sd_file)

    def start(self) -> PodDiscovery:
        self.refresh()
        self._thread = threading.Thread(target=self._run, name="pod-discovery", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(1.0):
            try:
                self.refresh()
            except Exception:  # an API hiccup: the next round retries
                continue

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)


@dataclass
class NodePrometheus:
    """One Prometheus process (`stop()` ends it by its PID) and its pod discovery."""

    process: subprocess.Popen[bytes]
    workdir: Path
    discoveries: list[PodDiscovery]
    port: int = PORT

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def api(self, path: str, **params: str) -> Any:
        response = httpx.get(f"{self.url}/api/v1/{path}", params=params, timeout=10)
        response.raise_for_status()
        body = response.json()
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.api("query", query=expr)["result"]
        return result

    def query_range(self, expr: str, start: float, end: float, step: str = "1s") -> Any:
        return self.api(
            "query_range", query=expr, start=f"{start:.3f}", end=f"{end:.3f}", step=step
        )["result"]

    def alerts(self, name: str) -> list[dict[str, Any]]:
        """Alerts of that name Prometheus holds now (state pending or firing)."""
        return [a for a in self.api("alerts")["alerts"] if a["labels"]["alertname"] == name]

    def active_targets(self) -> list[dict[str, Any]]:
        targets: list[dict[str, Any]] = self.api("targets", state="active")["activeTargets"]
        return targets

    def stop(self) -> None:
        for discovery in self.discoveries:
            discovery.stop()
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)

    def log_tail(self) -> str:
        return (self.workdir / "prometheus.log").read_text(errors="replace")[-3000:]


def ensure_prometheus() -> str:
    """Debian's prometheus binary, installed through the project's package script."""
    if shutil.which("prometheus") is None:
        subprocess.run(
            [REPO_ROOT / "scripts" / "ensure-debian-packages.sh", "prometheus"],
            check=True,
            timeout=300,
        )
    found = shutil.which("prometheus")
    assert found is not None, "the prometheus package did not install a prometheus binary"
    return found


def start_prometheus(
    workdir: Path, kube: KubeClient, pod_monitors: list[dict[str, Any]], rule: dict[str, Any]
) -> NodePrometheus:
    """Discover the monitors' pods from the API server, write the config and rules the
    operator would generate, start Prometheus and wait until it is ready."""
    jobs, discoveries = [], []
    workdir.mkdir(parents=True, exist_ok=True)
    for index, monitor in enumerate(pod_monitors):
        sd_file = workdir / f"pods-{index}.json"
        discoveries.append(PodDiscovery(kube, monitor_namespaces(monitor), sd_file).start())
        jobs += scrape_jobs(monitor, sd_file)
    return run_prometheus(workdir, jobs, rule["spec"]["groups"], discoveries)


def run_prometheus(
    workdir: Path,
    jobs: list[dict[str, Any]],
    groups: list[dict[str, Any]],
    discoveries: list[PodDiscovery] | None = None,
    port: int = PORT,
) -> NodePrometheus:
    """Prometheus with these scrape jobs and rule groups, on 127.0.0.1:PORT, once ready."""
    binary = ensure_prometheus()
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "rules.yaml").write_text(yaml.safe_dump({"groups": groups}))
    config = {
        "global": {"evaluation_interval": EVALUATION_INTERVAL, "scrape_interval": "30s"},
        "rule_files": [str(workdir / "rules.yaml")],
        "scrape_configs": jobs,
    }
    (workdir / "prometheus.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    log = (workdir / "prometheus.log").open("wb")
    process = subprocess.Popen(
        [
            binary,
            f"--config.file={workdir / 'prometheus.yml'}",
            f"--storage.tsdb.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--storage.tsdb.retention.time=1d",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    prometheus = NodePrometheus(process, workdir, discoveries or [], port)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, f"prometheus exited:\n{prometheus.log_tail()}"
        try:
            if httpx.get(f"{prometheus.url}/-/ready", timeout=2).status_code == 200:
                return prometheus
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    prometheus.stop()
    raise AssertionError(f"prometheus not ready in 60 s:\n{prometheus.log_tail()}")
