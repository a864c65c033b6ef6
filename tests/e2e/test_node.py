"""The proxy plane on a real node: the image runs, `pulumi up` awaits it, the smoke output works.

scripts/local-node/cluster.sh runs a kubelet with containerd inside the test's network namespace,
the proxy image built here sits in the node's registry, and a fake OpenAI API on the node
records the fingerprint of every key that reaches it. The tests run in file order on one
stack, `node`, with the proxy plane on, the agentgateway plane off and no skipAwait.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import httpx
import pytest
from kubernetes import client

from proxy.fingerprint import key_fingerprint
from tests.e2e.e2e_kube import Kube
from tests.e2e.e2e_node import proxy_pods, up_node_stack, upstream_calls
from tests.e2e.e2e_pulumi import FAKE_KEY, Workspace, run_smoke_output

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("node")]

STACK = "node"
NS = "llm-gateway-node"
PROXY = "llm-proxy"


def test_the_node_is_ready_with_the_versions_built_here(kube: Kube, node: dict[str, str]) -> None:
    found = kube.core.read_node(node["LLM_GATEWAY_NODE_NAME"])
    ready = {c.type: c.status for c in found.status.conditions}["Ready"]
    assert ready == "True"
    info = found.status.node_info
    assert info.kubelet_version == "v1.36.3"
    assert info.container_runtime_version.startswith("containerd://")


def test_up_returns_once_the_proxy_is_available(
    workspace: Workspace, kube: Kube, kubeconfig: str, node: dict[str, str]
) -> None:
    up_node_stack(workspace, STACK, NS, kubeconfig, node)

    # Awaited for real: when `pulumi up` returns the Deployment is Available and the
    # Service has a ready endpoint, with nothing polled after the fact.
    deployment = kube.apps.read_namespaced_deployment(PROXY, NS)
    assert "pulumi.com/skipAwait" not in (deployment.metadata.annotations or {})
    assert deployment.status.available_replicas == deployment.spec.replicas == 1
    available = {c.type: c.status for c in deployment.status.conditions}["Available"]
    assert available == "True"
    slices = client.DiscoveryV1Api(kube.api).list_namespaced_endpoint_slice(
        NS, label_selector=f"kubernetes.io/service-name={PROXY}"
    )
    ready = [
        endpoint
        for item in slices.items
        for endpoint in item.endpoints or []
        if endpoint.conditions and endpoint.conditions.ready
    ]
    assert len(ready) == 1
    (pod,) = proxy_pods(kube, NS)
    assert pod.spec.containers[0].image == node["LLM_GATEWAY_NODE_PROXY_IMAGE"]
    assert pod.status.container_statuses[0].restart_count == 0


def test_the_pod_runs_unprivileged_and_reports_the_stack_fingerprint(
    workspace: Workspace, kube: Kube, node: dict[str, str]
) -> None:
    expected = workspace.run("stack", "output", "keyFingerprint", "--stack", STACK).stdout.strip()
    assert expected == key_fingerprint(FAKE_KEY)
    (pod,) = proxy_pods(kube, NS)
    # The test runs inside the node's namespace, so pod IPs are reachable from here.
    # keySource api (the default): the key comes from the pod's watch on its Secret.
    deadline = time.monotonic() + 30
    while True:
        readyz = httpx.get(f"http://{pod.status.pod_ip}:8080/readyz", timeout=5).json()
        if readyz.get("keySource") == "api" or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert readyz == {
        "status": "ready",
        "keyFingerprint": expected,
        "keySource": "api",
        "keyApi": "watching",
    }
    # Metrics on their own port only (the scraper's NetworkPolicy rule opens just that one).
    assert httpx.get(f"http://{pod.status.pod_ip}:8080/metrics", timeout=5).status_code == 404
    scraped = httpx.get(f"http://{pod.status.pod_ip}:9090/metrics", timeout=5)
    assert scraped.status_code == 200
    assert "llm_proxy_key_loaded 1.0" in scraped.text
    status = pod.status.container_statuses[0]
    assert status.ready is True
    assert status.image_id.endswith(node["LLM_GATEWAY_NODE_PROXY_IMAGE"].split("@")[1])


def test_the_smoke_output_runs_as_the_readme_says_and_the_key_reaches_the_upstream(
    workspace: Workspace, node: dict[str, str]
) -> None:
    began = time.time()
    done = run_smoke_output(workspace, STACK)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-3000:]
    assert "pong" in output
    # The last line proves which key every proxy pod serves, from the output alone.
    assert f"ok: every proxy pod (1) serves key {key_fingerprint(FAKE_KEY)}" in output
    calls = upstream_calls(node["LLM_GATEWAY_NODE_UPSTREAM_RECORD"], began)
    chats = [call for call in calls if call["path"].endswith("/chat/completions")]
    assert chats, f"the upstream saw no chat completion since the smoke started: {calls}"
    # The key that `pulumi config set --secret openaiKey` set, from a pod on the node.
    assert {call["keyFingerprint"] for call in chats} == {key_fingerprint(FAKE_KEY)}
    assert all(call["client"].startswith("10.244.") for call in chats), chats


def test_the_smoke_output_fails_with_one_line_why_when_the_upstream_rejects_the_key(
    workspace: Workspace,
) -> None:
    accept = Path(os.environ["LLM_GATEWAY_NODE_UPSTREAM_ACCEPT"])
    accept.write_text("000000000000\n")  # some other key's fingerprint only
    try:
        done = run_smoke_output(workspace, STACK)
    finally:
        accept.unlink()
    assert done.returncode != 0
    (reason,) = [line for line in done.stdout.splitlines() if line.startswith("smoke failed:")]
    assert "HTTP 401" in reason
    assert "Incorrect API key" in reason


def test_the_smoke_output_fails_with_one_line_why_when_the_service_is_gone(
    workspace: Workspace, kube: Kube
) -> None:
    kube.core.delete_namespaced_service(PROXY, NS)
    assert kube.wait_gone("Service", PROXY, NS)
    done = run_smoke_output(workspace, STACK)
    assert done.returncode != 0
    (reason,) = [line for line in done.stdout.splitlines() if line.startswith("smoke failed:")]
    assert f"{PROXY}.{NS}.svc.cluster.local" in reason
    # `up --refresh` notices the Service is gone and makes it again; the smoke passes again.
    workspace.run("up", "--yes", "--skip-preview", "--refresh", "--stack", STACK)
    assert run_smoke_output(workspace, STACK).returncode == 0


def test_destroy_removes_everything_the_stack_made(workspace: Workspace, kube: Kube) -> None:
    workspace.run("destroy", "--yes", "--skip-preview", "--stack", STACK)
    assert kube.wait_gone("Namespace", NS, timeout=120)
    assert proxy_pods(kube, NS) == []
