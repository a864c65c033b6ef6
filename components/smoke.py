"""The `smokeTest` output: one paste-able `kubectl run` per enabled data plane.

Each runs the proxy image's smoke client inside the cluster, with no credentials,
against that plane's in-cluster base URL; it prints the reply and exits non-zero on
failure (`kubectl run -i --rm --restart=Never` passes the pod's exit code through).
"""

import json
import os
import shlex

from .settings import GatewayConfig
from .shapes.deployment import container_security_context, pod_security_context


def _hardening_overrides(pod: str) -> str:
    """The smoke pod hardened like the proxy, so namespaces enforcing Pod Security
    "restricted" admit it; strategic merge keeps kubectl's own container fields."""
    overrides = {
        "apiVersion": "v1",
        "spec": {
            "automountServiceAccountToken": False,
            "securityContext": pod_security_context(),
            "containers": [{"name": pod, "securityContext": container_security_context()}],
        },
    }
    return json.dumps(overrides, separators=(",", ":"), sort_keys=True)


def _kubeconfig_file(kubeconfig: str | None) -> str | None:
    """The file the provider reads, if `kubeconfig` names one (as the provider decides:
    an existing path, `~` expanded); inline contents are never copied into a command."""
    if not kubeconfig or "\n" in kubeconfig:
        return None
    path = os.path.expanduser(kubeconfig)
    return path if os.path.isfile(path) else None


def _kubectl_run(cfg: GatewayConfig, pod: str, url: str) -> str:
    argv = ["kubectl"]
    if kubeconfig := _kubeconfig_file(cfg.kubeconfig):
        argv += ["--kubeconfig", kubeconfig]
    if cfg.context:
        argv += ["--context", cfg.context]
    argv += [
        "run",
        pod,
        "--namespace",
        cfg.namespace,
        "--rm",
        "-i",
        "--restart=Never",
        "--image",
        cfg.proxy.image_ref,
        "--override-type=strategic",
        f"--overrides={_hardening_overrides(pod)}",
        "--command",
        "--",
        "python",
        "-m",
        "proxy",
        "smoke",
        "--url",
        url,
        "--model",
        cfg.smoke_test.model,
    ]
    return shlex.join(argv)


def smoke_test_command(
    cfg: GatewayConfig, *, gateway_endpoint: str | None, proxy_endpoint: str | None
) -> str:
    """Newline-separated commands, gateway first; each one stands alone."""
    commands = []
    if gateway_endpoint is not None:
        commands.append(_kubectl_run(cfg, "llm-smoke-gateway", gateway_endpoint))
    if proxy_endpoint is not None:
        commands.append(_kubectl_run(cfg, "llm-smoke-proxy", proxy_endpoint))
    return "\n".join(commands)
