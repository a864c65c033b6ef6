"""Rollouts on the real node: three replicas take a new image digest under load with no
failed request; an unpullable image and a proxy that dies at start fail `pulumi up` within
proxy.rolloutTimeout, naming the pods' reason, while the old pods keep serving; fixing the
config recovers. Tests run in file order on one stack, `rollout`.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from tests.e2e.e2e_kube import Kube
from tests.e2e.e2e_node import (
    proxy_pods,
    proxy_service_url,
    same_image_new_digest,
    up_node_stack,
)
from tests.e2e.e2e_pulumi import Workspace, run_smoke_output
from tests.e2e.steady_load import SteadyLoad

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("node")]

STACK = "rollout"
NS = "llm-gateway-rollout"
PROXY = "llm-proxy"
REPLICAS = 3
ROLLOUT_TIMEOUT_S = 60  # proxy.rolloutTimeout for this stack (the default is 300)
# `pulumi up` may take this much beyond the rollout timeout (engine start, other steps).
UP_OVERHEAD_S = 45


def pods(kube: Kube) -> list[Any]:
    return proxy_pods(kube, NS)


def pod_names(kube: Kube) -> set[str]:
    return {pod.metadata.name for pod in pods(kube)}


def up(workspace: Workspace, *, check: bool = True) -> tuple[float, str, int]:
    """`pulumi up`: (seconds it took, its output, exit code)."""
    began = time.monotonic()
    done = workspace.run("up", "--yes", "--skip-preview", "--stack", STACK, check=check)
    return time.monotonic() - began, done.output, done.code


def set_proxy(workspace: Workspace, key: str, value: str) -> None:
    workspace.run("config", "set", "--path", "--stack", STACK, f"proxy.{key}", value)


def under_load(kube: Kube) -> SteadyLoad:
    return SteadyLoad(proxy_service_url(kube, NS), rate=10, max_seconds=300).start()


def assert_no_failures(load: SteadyLoad, what: str) -> None:
    outcomes = load.stop()
    failures = load.failures()
    print(f"\n{what}: {len(outcomes)} requests, {len(failures)} failed")
    assert len(outcomes) > 50
    assert failures == [], failures[:5]


def test_up_with_three_replicas_of_two_workers(
    workspace: Workspace, kube: Kube, kubeconfig: str, node: dict[str, str]
) -> None:
    proxy = {
        "replicas": REPLICAS,
        "rolloutTimeout": ROLLOUT_TIMEOUT_S,
        # A 2-CPU limit makes each pod a supervisor with two workers (LLM_PROXY_WORKERS).
        "resources": {
            "requests": {"cpu": "25m", "memory": "48Mi"},
            "limits": {"cpu": "2", "memory": "192Mi"},
        },
    }
    up_node_stack(workspace, STACK, NS, kubeconfig, node, proxy=proxy)
    deployment = kube.apps.read_namespaced_deployment(PROXY, NS)
    assert deployment.status.available_replicas == REPLICAS
    assert deployment.spec.progress_deadline_seconds == ROLLOUT_TIMEOUT_S
    for pod in pods(kube):
        log = kube.core.read_namespaced_pod_log(pod.metadata.name, NS, container="proxy")
        (listening,) = [json.loads(line) for line in log.splitlines() if '"listening"' in line]
        assert listening["workers"] == 2
        assert len(set(listening["workerPids"])) == 2


def test_a_rolling_update_to_a_new_digest_loses_no_request(
    workspace: Workspace, kube: Kube, node: dict[str, str]
) -> None:
    before = pod_names(kube)
    image = same_image_new_digest(node["LLM_GATEWAY_NODE_PROXY_IMAGE"], "rollout")
    load = under_load(kube)
    try:
        time.sleep(3)  # traffic flowing before the change
        set_proxy(workspace, "image", image)
        took, _, _ = up(workspace)
        time.sleep(3)  # and after it
    finally:
        assert_no_failures(load, f"rolling update of {REPLICAS} pods ({took:.0f} s)")
    after = pods(kube)
    assert len(after) == REPLICAS
    assert before.isdisjoint(pod.metadata.name for pod in after)  # every pod replaced
    for pod in after:
        assert pod.spec.containers[0].image == image
        assert pod.status.container_statuses[0].ready


def failed_up_under_load(
    workspace: Workspace, kube: Kube, changes: dict[str, str], what: str, marker: str
) -> str:
    """Apply `changes` (proxy.<key> → value) and `pulumi up` under load: the update must
    fail within the rollout timeout while no request fails. Its output."""
    load = under_load(kube)
    try:
        for key, value in changes.items():
            set_proxy(workspace, key, value)
        took, output, code = up(workspace, check=False)
    finally:
        assert_no_failures(load, f"failed rollout ({what})")
    reasons = [line.strip() for line in output.splitlines() if marker in line]
    print(f"{what}: `pulumi up` failed after {took:.0f} s: {reasons[:1]}")
    assert code != 0
    assert ROLLOUT_TIMEOUT_S <= took <= ROLLOUT_TIMEOUT_S + UP_OVERHEAD_S
    return output


def test_an_unpullable_image_fails_up_in_time_naming_why_and_the_old_pods_serve(
    workspace: Workspace, kube: Kube, node: dict[str, str]
) -> None:
    serving = pod_names(kube)
    good_image = kube.apps.read_namespaced_deployment(PROXY, NS).spec.template.spec.containers[0]
    registry = node["LLM_GATEWAY_NODE_PROXY_IMAGE"].split("/")[0]
    missing = {"image": f"{registry}/llm-proxy:no-such-tag"}
    output = failed_up_under_load(workspace, kube, missing, "unpullable image", "no-such-tag")
    assert "ErrImagePull" in output or "ImagePullBackOff" in output, output[-3000:]
    assert "no-such-tag" in output
    assert serving <= pod_names(kube)  # surge pod only: the old ones never went away

    set_proxy(workspace, "image", good_image.image)
    took, _, _ = up(workspace)
    print(f"recovered in {took:.0f} s")
    assert pod_names(kube) == serving


def test_a_proxy_that_dies_at_start_fails_up_naming_the_reason_and_recovers(
    workspace: Workspace, kube: Kube
) -> None:
    serving = pod_names(kube)
    container = kube.apps.read_namespaced_deployment(PROXY, NS).spec.template.spec.containers[0]
    requests, limits = container.resources.requests, container.resources.limits
    # Too little memory for the interpreter and its imports: killed before it serves.
    tiny = {"resources.requests.memory": "24Mi", "resources.limits.memory": "24Mi"}
    output = failed_up_under_load(workspace, kube, tiny, "crash at start", "OOMKilled")
    assert "OOMKilled" in output, output[-3000:]
    assert serving <= pod_names(kube)

    set_proxy(workspace, "resources.limits.memory", limits["memory"])
    set_proxy(workspace, "resources.requests.memory", requests["memory"])
    up(workspace)
    assert pod_names(kube) == serving


def test_the_smoke_output_says_why_when_the_proxy_is_scaled_to_zero(
    workspace: Workspace, kube: Kube
) -> None:
    set_proxy(workspace, "replicas", "0")
    up(workspace)
    # Terminating pods serve until drained (kube-proxy keeps them): wait until none is left.
    selector = f"app.kubernetes.io/name={PROXY}"
    deadline = time.monotonic() + 90
    while kube.core.list_namespaced_pod(NS, label_selector=selector).items:
        assert time.monotonic() < deadline, "proxy pods still there 90 s after scaling to 0"
        time.sleep(1)
    done = run_smoke_output(workspace, STACK)
    assert done.returncode != 0
    (reason,) = [line for line in done.stdout.splitlines() if line.startswith("smoke failed:")]
    assert "cannot connect" in reason
    assert f"{PROXY}.{NS}.svc.cluster.local" in reason


def test_destroy(workspace: Workspace, kube: Kube) -> None:
    workspace.run("destroy", "--yes", "--skip-preview", "--stack", STACK)
    assert kube.wait_gone("Namespace", NS, timeout=120)
