"""What the node scenarios share: the node's facts from the environment, its fake upstream's
record, and the proxy pods of a namespace.

scripts/e2e/cluster.sh exports the LLM_GATEWAY_NODE_* variables when a node runs; without
them the `node` fixture (tests/e2e/conftest.py) skips the scenario.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from tests.e2e.e2e_kube import Kube
from tests.e2e.e2e_pulumi import FAKE_KEY, Workspace, write_stack_file

NODE_ENV = (
    "LLM_GATEWAY_NODE_NAME",
    "LLM_GATEWAY_NODE_PROXY_IMAGE",
    "LLM_GATEWAY_NODE_UPSTREAM_URL",
    "LLM_GATEWAY_NODE_UPSTREAM_RECORD",
    "LLM_GATEWAY_NODE_UPSTREAM_ACCEPT",
)
PROXY = "llm-proxy"


def missing_node_env() -> list[str]:
    return [name for name in NODE_ENV if not os.environ.get(name)]


def upstream_calls(record: str, since: float) -> list[dict[str, Any]]:
    """What the node's fake upstream saw since `since` (one JSON object per request)."""
    path = Path(record)
    if not path.exists():
        return []
    calls = [json.loads(line) for line in path.read_text().splitlines() if line]
    return [call for call in calls if call["time"] >= since]


def chats_since(node: dict[str, str], since: float) -> list[dict[str, Any]]:
    """The chat completions the node's fake upstream saw since `since`."""
    calls = upstream_calls(node["LLM_GATEWAY_NODE_UPSTREAM_RECORD"], since)
    return [call for call in calls if call["path"].endswith("/chat/completions")]


def proxy_pods(kube: Kube, namespace: str) -> list[Any]:
    """The proxy's pods in `namespace` that are not being deleted."""
    found = kube.core.list_namespaced_pod(
        namespace, label_selector=f"app.kubernetes.io/name={PROXY}"
    )
    return [pod for pod in found.items if pod.metadata.deletion_timestamp is None]


def proxy_service_url(kube: Kube, namespace: str) -> str:
    """The proxy Service's OpenAI base URL on its ClusterIP (reached through kube-proxy)."""
    service = kube.core.read_namespaced_service(PROXY, namespace)
    return f"http://{service.spec.cluster_ip}:{service.spec.ports[0].port}/v1"


def up_node_stack(
    ws: Workspace,
    stack: str,
    namespace: str,
    kubeconfig: str,
    node: dict[str, str],
    proxy: dict[str, Any] | None = None,
    more: dict[str, dict[str, Any]] | None = None,
) -> None:
    """Create `stack` for the node (proxy plane with the node's image, agentgateway off,
    the node's fake upstream, no skipAwait; `proxy` and `more` add settings per top-level
    key) and `pulumi up` it: returns once awaited."""
    overrides = {
        "proxy": {"image": node["LLM_GATEWAY_NODE_PROXY_IMAGE"], **(proxy or {})},
        "agentgateway": {"enabled": False},
        **(more or {}),
    }
    write_stack_file(ws, stack, namespace, overrides)
    ws.run("stack", "init", stack, "--secrets-provider", "passphrase")
    ws.run("config", "set", "--stack", stack, "kubeconfig", kubeconfig)
    upstream = node["LLM_GATEWAY_NODE_UPSTREAM_URL"]
    ws.run("config", "set", "--stack", stack, "openaiBaseUrl", upstream)
    ws.set_secret("openaiKey", FAKE_KEY, stack)
    ws.run("up", "--yes", "--skip-preview", "--stack", stack)


def same_image_new_digest(image: str, tag: str) -> str:
    """`image` pushed again under `tag` as a Docker v2s2 manifest (the build writes OCI):
    the same layers under a new manifest digest, so a Deployment pointed at it rolls its
    pods. The node's registry is on the namespace's loopback, where the tests run."""
    registry_repo = image.split("@", 1)[0]
    with tempfile.TemporaryDirectory() as scratch:
        digest_file = Path(scratch) / "digest"
        subprocess.run(
            [
                "skopeo", "copy", "--quiet", "--format", "v2s2",
                "--src-tls-verify=false", "--dest-tls-verify=false",
                "--digestfile", str(digest_file),
                f"docker://{image}", f"docker://{registry_repo}:{tag}",
            ],
            check=True,
            timeout=120,
            env={k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")},
        )  # fmt: skip
        digest = digest_file.read_text().strip()
    assert digest.startswith("sha256:"), digest
    assert digest not in image, "the copy kept the digest; the rollout would change nothing"
    return f"{registry_repo}@{digest}"
