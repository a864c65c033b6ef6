"""smokeTest.onUp on the real node: `pulumi up` itself sends the smoke request as a Job.

The Job runs once the proxy is ready, proves (after a rotation: waits until) the proxy
serves the stack's key, and fails the update with the smoke's reason. An update that
changes nothing runs no Job; a failed one is re-run by the next `pulumi up`. Tests run in
file order on one stack, `onup`; the node's fake upstream records every call it gets.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from proxy.fingerprint import key_fingerprint
from tests.e2e.e2e_kube import Kube
from tests.e2e.e2e_node import chats_since, up_node_stack
from tests.e2e.e2e_pulumi import FAKE_KEY, ROTATED_KEY, Workspace

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("node")]

STACK = "onup"
NS = "llm-gateway-onup"
REJECTED_KEY = "sk-test-FAKEKEY-e2e-rejected-00112233445566"
# A failed or changed Job's `pulumi up` waits for pods and Jobs to start: well within this.
ROTATION_UP_BOUND_S = 200
# A rotation's Job waits until the proxy serves the new key: with keySource api (the default)
# the pods get it from their Secret watch in well under a second, so the whole `pulumi up`
# returns within this (~54 s when the Job had to wait for the kubelet's sync).
API_ROTATION_UP_BOUND_S = 15


@pytest.fixture(autouse=True, scope="module")
def _upstream_accepts_every_key_afterwards() -> Iterator[None]:
    yield
    if accept := os.environ.get("LLM_GATEWAY_NODE_UPSTREAM_ACCEPT"):
        Path(accept).unlink(missing_ok=True)


def smoke_jobs(kube: Kube) -> list[Any]:
    found = kube.batch.list_namespaced_job(NS, label_selector="app.kubernetes.io/name=llm-smoke")
    return [job for job in found.items if job.metadata.deletion_timestamp is None]


def output(workspace: Workspace, name: str) -> str:
    return workspace.run("stack", "output", name, "--stack", STACK).stdout.strip()


def up(workspace: Workspace, *, check: bool = True) -> tuple[float, str, int]:
    began = time.monotonic()
    done = workspace.run("up", "--yes", "--skip-preview", "--stack", STACK, check=check)
    return time.monotonic() - began, done.output, done.code


def test_up_sends_one_smoke_request_and_reports_it(
    workspace: Workspace, kube: Kube, kubeconfig: str, node: dict[str, str]
) -> None:
    workspace.forbidden.append(REJECTED_KEY)
    began = time.time()
    up_node_stack(workspace, STACK, NS, kubeconfig, node, more={"smokeTest": {"onUp": True}})
    (job,) = smoke_jobs(kube)
    assert job.status.succeeded == 1
    result = output(workspace, "smokeOnUp")
    assert result.startswith(f"proxy: passed (job {job.metadata.name}, completed ")
    (chat,) = chats_since(node, began)  # one real request, through a proxy pod
    assert chat["keyFingerprint"] == key_fingerprint(FAKE_KEY)
    assert chat["client"].startswith("10.244.")


def test_an_up_that_changes_nothing_sends_nothing(
    workspace: Workspace, kube: Kube, node: dict[str, str]
) -> None:
    (before,) = smoke_jobs(kube)
    began = time.time()
    up(workspace)
    (after,) = smoke_jobs(kube)
    assert after.metadata.uid == before.metadata.uid
    assert chats_since(node, began) == []


def test_after_a_rotation_up_returns_once_the_new_key_answered(
    workspace: Workspace, kube: Kube, node: dict[str, str]
) -> None:
    (old_job,) = smoke_jobs(kube)
    began = time.time()
    workspace.set_secret("openaiKey", ROTATED_KEY, STACK)
    took, _, _ = up(workspace)
    print(f"\nrotation with smokeTest.onUp: `pulumi up` took {took:.1f} s")
    assert took <= API_ROTATION_UP_BOUND_S
    (job,) = smoke_jobs(kube)
    assert job.metadata.name != old_job.metadata.name
    assert job.status.succeeded == 1
    (chat,) = chats_since(node, began)  # sent only once the pod served the new key
    assert chat["keyFingerprint"] == key_fingerprint(ROTATED_KEY)
    assert job.metadata.name in output(workspace, "smokeOnUp")


def test_a_key_the_upstream_rejects_fails_up_with_the_smoke_reason(
    workspace: Workspace, kube: Kube, node: dict[str, str]
) -> None:
    accept = Path(os.environ["LLM_GATEWAY_NODE_UPSTREAM_ACCEPT"])
    accept.write_text(f"{key_fingerprint(ROTATED_KEY)}\n")
    workspace.set_secret("openaiKey", REJECTED_KEY, STACK)
    began = time.time()
    took, text, code = up(workspace, check=False)
    reasons = [line.strip() for line in text.splitlines() if "smoke failed:" in line]
    print(f"\nrejected key: `pulumi up` failed after {took:.0f} s: {reasons[:1]}")
    assert code != 0
    assert took < ROTATION_UP_BOUND_S
    assert "smoke failed: HTTP 401" in text, text[-3000:]
    assert "Incorrect API key" in text
    (chat,) = chats_since(node, began)  # sent with the new key, once a pod served it
    assert chat["keyFingerprint"] == key_fingerprint(REJECTED_KEY)
    assert chat["accepted"] is False


def test_a_failed_smoke_is_rerun_by_the_next_up_once_the_upstream_accepts(
    workspace: Workspace, kube: Kube, node: dict[str, str]
) -> None:
    # The operator fixes the upstream side (the key gets accepted) and runs `pulumi up`
    # again with the same config: the failed Job is replaced and passes.
    accept = Path(os.environ["LLM_GATEWAY_NODE_UPSTREAM_ACCEPT"])
    accept.write_text(f"{key_fingerprint(REJECTED_KEY)}\n")
    began = time.time()
    up(workspace)
    (job,) = smoke_jobs(kube)
    assert job.status.succeeded == 1
    (chat,) = chats_since(node, began)
    assert chat["keyFingerprint"] == key_fingerprint(REJECTED_KEY)
    assert chat["accepted"] is True


def test_destroy_removes_the_jobs(workspace: Workspace, kube: Kube) -> None:
    workspace.run("destroy", "--yes", "--skip-preview", "--stack", STACK)
    assert kube.wait_gone("Namespace", NS, timeout=120)
