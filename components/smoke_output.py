"""The `smokeTest` output: one paste-able `kubectl run` per enabled data plane.

Each runs the proxy image's smoke client inside the cluster, with no credentials,
against that plane's in-cluster base URL; it prints the reply and exits non-zero on
failure (`kubectl run -i --rm --restart=Never` passes the pod's exit code through).
The pods carry the client label, so the NetworkPolicies let them in.

A last line proves which key is live: it asks every running proxy pod for the key
fingerprint on its /readyz (through `kubectl exec`, so no NetworkPolicy is in the way)
and waits, bounded, until all of them serve the stack's `keyFingerprint`, which it knows
from the output itself. After a rotation that wait is the kubelet's Secret sync (about a
minute). agentgateway cannot report which key it holds; its line says so.
"""

import json
import os
import re
import shlex
from collections.abc import Mapping
from typing import Any

from proxy.contract import READY_PATH

from .config_model import CLIENT_LABEL, LlmGatewayConfig
from .identity import CALLER_TOKEN_FILE, SMOKE_ACCOUNT, caller_token_mount, caller_token_volume
from .shapes.deployment import CONTAINER_PORT, container_security_context, pod_security_context
from .shapes.meta import selector

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


def _hardening_overrides(pod: str, audience: str | None = None) -> str:
    """The smoke pod hardened like the proxy, so namespaces enforcing Pod Security
    "restricted" admit it; strategic merge keeps kubectl's own container fields. With
    identity on (`audience`), it runs as the `llm-smoke` ServiceAccount with a projected
    token for the gateway."""
    container: dict[str, Any] = {
        "name": pod,
        "securityContext": _camel(container_security_context()),
    }
    spec: dict[str, Any] = {
        "automountServiceAccountToken": False,
        "securityContext": _camel(pod_security_context()),
        "containers": [container],
    }
    if audience is not None:
        spec["serviceAccountName"] = SMOKE_ACCOUNT
        spec["volumes"] = [_camel(caller_token_volume(audience))]
        container["volumeMounts"] = [_camel(caller_token_mount())]
    overrides = {"apiVersion": "v1", "spec": spec}
    return json.dumps(overrides, separators=(",", ":"), sort_keys=True)


def _kubeconfig_file(kubeconfig: str | None) -> str | None:
    """The file the provider reads, if `kubeconfig` names one (as the provider decides:
    an existing path, `~` expanded); inline contents are never copied into a command."""
    if not kubeconfig or "\n" in kubeconfig:
        return None
    path = os.path.expanduser(kubeconfig)
    return path if os.path.isfile(path) else None


# How long the key check waits for every proxy pod to serve the expected key: past the
# kubelet's default Secret sync (1 min plus jitter; README "Rotation latency") with room
# to spare.
KEY_CHECK_SECONDS = 180
KEY_CHECK_INTERVAL_SECONDS = 5
# Run in each proxy pod: the fingerprint its /readyz reports (empty when it does not answer).
_READ_FINGERPRINT = (
    "import json,urllib.request as r;"
    f"print(json.load(r.urlopen('http://127.0.0.1:{CONTAINER_PORT}{READY_PATH}',timeout=5))"
    "['keyFingerprint'])"
)


def _kubectl(cfg: LlmGatewayConfig) -> list[str]:
    """kubectl with the kubeconfig and context the provider uses."""
    argv = ["kubectl"]
    if kubeconfig := _kubeconfig_file(cfg.kubeconfig):
        argv += ["--kubeconfig", kubeconfig]
    if cfg.context:
        argv += ["--context", cfg.context]
    return argv


def _key_check(cfg: LlmGatewayConfig, proxy_name: str, fingerprint: str) -> str:
    """A bounded wait until every running proxy pod serves `fingerprint`, as one line."""
    kubectl = shlex.join(_kubectl(cfg))
    namespace = shlex.quote(cfg.namespace)
    (label,) = selector(proxy_name).items()
    tries = KEY_CHECK_SECONDS // KEY_CHECK_INTERVAL_SECONDS
    list_pods = (
        f"{kubectl} get pods -n {namespace} -l {shlex.quote('='.join(label))} "
        "--field-selector=status.phase=Running -o name"
    )
    read = f'{kubectl} exec -n {namespace} "$pod" -- python -c {shlex.quote(_READ_FINGERPRINT)}'
    return (
        f"(expected={shlex.quote(fingerprint)}; "
        f"for try in $(seq {tries}); do total=0; stale=0; "
        f"for pod in $({list_pods}); do total=$((total+1)); "
        f"served=$({read} 2>/dev/null) || served=; "
        '[ "$served" = "$expected" ] || stale=$((stale+1)); done; '
        'if [ "$total" -gt 0 ] && [ "$stale" = 0 ]; then '
        'echo "ok: every proxy pod ($total) serves key $expected"; exit 0; fi; '
        f"sleep {KEY_CHECK_INTERVAL_SECONDS}; done; "
        f'echo "smoke failed: after {KEY_CHECK_SECONDS}s, $stale of $total running proxy pods '
        "do not serve key $expected yet (the kubelet refreshes Secret volumes about once a "
        'minute; keep the old key valid until they do)" >&2; exit 1)'
    )


def _kubectl_run(cfg: LlmGatewayConfig, pod: str, url: str) -> str:
    image = cfg.proxy.image_ref
    if image is None:
        return NO_IMAGE
    argv = _kubectl(cfg)
    identity_on = cfg.identity.mode != "off"
    audience = cfg.identity.audience if identity_on else None
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
        f"--overrides={_hardening_overrides(pod, audience)}",
        "--command",
        "--",
        *smoke_client_command(url, cfg.smoke_test.model, with_token=identity_on),
    ]
    return shlex.join(argv)


def smoke_client_command(
    url: str, model: str, expect_key: str | None = None, *, with_token: bool = False
) -> list[str]:
    """The proxy image's smoke client: one keyless chat through `url` (the `smokeTest`
    pods and the smokeTest.onUp Jobs run the same). With `expect_key`, it first waits
    until the answering proxy serves that key (the bundled proxy reports it). With
    `with_token` (identity on) it sends the pod's projected ServiceAccount token."""
    command = ["python", "-m", "proxy", "smoke", "--url", url, "--model", model]
    if with_token:
        command += ["--token-file", CALLER_TOKEN_FILE]
    if expect_key is not None:
        command += ["--expect-key", expect_key, "--key-wait", str(KEY_CHECK_SECONDS)]
    return command


def smoke_test_command(
    cfg: LlmGatewayConfig,
    *,
    gateway_endpoint: str | None,
    proxy_endpoint: str | None,
    key_fingerprint: str | None = None,
    proxy_name: str = "llm-proxy",
) -> str:
    """Newline-separated commands, gateway first; each one stands alone. With the proxy
    plane on and `key_fingerprint` known, a last line checks every proxy pod serves it.
    (Under the kill switch LlmGateway prints kill_switch.SMOKE_TEST_WHILE_ON instead.)"""
    commands = []
    if gateway_endpoint is not None:
        gateway = _kubectl_run(cfg, "llm-smoke-gateway", gateway_endpoint)
        if gateway != NO_IMAGE:
            gateway += "  # agentgateway cannot report which key it holds: not checked"
        commands.append(gateway)
    if proxy_endpoint is not None:
        commands.append(_kubectl_run(cfg, "llm-smoke-proxy", proxy_endpoint))
        if key_fingerprint is not None and cfg.proxy.image_ref is not None:
            commands.append(_key_check(cfg, proxy_name, key_fingerprint))
    return "\n".join(commands)
