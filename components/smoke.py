"""The `smokeTest` output: one paste-able `kubectl run` per enabled data plane.

Each runs the proxy image's smoke client inside the cluster, with no credentials,
against that plane's in-cluster base URL; it prints the reply and exits non-zero on
failure (`kubectl run -i --rm --restart=Never` passes the pod's exit code through).
The pods carry the client label, so the NetworkPolicies let them in.
"""

import json
import os
import re
import shlex
from collections.abc import Mapping
from typing import Any

from .config_model import CLIENT_LABEL, LlmGatewayConfig
from .shapes.deployment import container_security_context, pod_security_context

# Without an image there is nothing to run the smoke client with; say so when run.
NO_IMAGE = (
    "echo 'smokeTest: no proxy.image set (the smoke client runs in the proxy image); "
    "build one with make image and set proxy.image' >&2; exit 1"
)


def _camel(value: Any) -> Any:
    """The SDK's snake_case typed-dict keys as the API spells them (kubectl reads JSON)."""
    if isinstance(value, Mapping):
        return {
            re.sub(r"_([a-z])", lambda m: m[1].upper(), key): _camel(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_camel(item) for item in value]
    return value


def _hardening_overrides(pod: str) -> str:
    """The smoke pod hardened like the proxy, so namespaces enforcing Pod Security
    "restricted" admit it; strategic merge keeps kubectl's own container fields."""
    overrides = {
        "apiVersion": "v1",
        "spec": {
            "automountServiceAccountToken": False,
            "securityContext": _camel(pod_security_context()),
            "containers": [{"name": pod, "securityContext": _camel(container_security_context())}],
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


def _kubectl_run(cfg: LlmGatewayConfig, pod: str, url: str) -> str:
    image = cfg.proxy.image_ref
    if image is None:
        return NO_IMAGE
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
        f"--labels={CLIENT_LABEL}=true",
        "--image",
        image,
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
    cfg: LlmGatewayConfig, *, gateway_endpoint: str | None, proxy_endpoint: str | None
) -> str:
    """Newline-separated commands, gateway first; each one stands alone."""
    commands = []
    if gateway_endpoint is not None:
        commands.append(_kubectl_run(cfg, "llm-smoke-gateway", gateway_endpoint))
    if proxy_endpoint is not None:
        commands.append(_kubectl_run(cfg, "llm-smoke-proxy", proxy_endpoint))
    return "\n".join(commands)
