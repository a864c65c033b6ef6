"""Live traffic on the real node: rotation under load with zero failed calls, the kill switch.

A steady client in the node's namespace calls the proxy Service (its ClusterIP, through
kube-proxy) while the real engine rotates the key and flips the kill switch. The node's fake
upstream accepts any key and records, per request, the fingerprint that arrived and the pod
it came from. Tests run in file order on one stack, `live`, with two proxy replicas of two
worker processes each (a 2-CPU limit), so the rotation also proves the supervisor hands the
new key to every worker of a pod at once.

Rotation is measured with both key sources, the kubelet at its default sync: `api` (the
default: each pod watches its Secret) three times with two workers per pod and once with
one, then `file` (the mount alone), whose figure is the kubelet's Secret sync.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import time
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from components.shapes.deployment import PRE_STOP_SLEEP_SECONDS, TERMINATION_GRACE_SECONDS
from proxy.fingerprint import key_fingerprint
from tests.e2e.e2e_kube import Kube
from tests.e2e.e2e_node import proxy_pods, proxy_service_url, up_node_stack, upstream_calls
from tests.e2e.e2e_pulumi import (
    FAKE_KEY,
    ROTATED_KEY,
    Workspace,
    run_smoke_output,
)
from tests.e2e.steady_load import SteadyLoad

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("node")]

STACK = "live"
NS = "llm-gateway-live"
PROXY, SECRET = "llm-proxy", "openai-api-key"
REPLICAS = 2
WORKERS = 2  # per pod: the CPU limit below
PROXY_SETTINGS = {
    "replicas": REPLICAS,
    "resources": {
        "requests": {"cpu": "25m", "memory": "48Mi"},
        "limits": {"cpu": str(WORKERS), "memory": "192Mi"},
    },
}
# keySource api: every pod serves the new key this soon after `pulumi up` returns.
API_ROTATION_BOUND_S = 3.0
API_RUNS = 3
# keySource file: the kubelet re-reads a changed Secret at its pod sync (syncFrequency, 1m by
# default, plus jitter; the README has the measured times). Past this the rotation is broken.
ROTATION_BOUND_S = 180
THIRD_KEY = "sk-test-FAKEKEY-e2e-third-00112233445566778899"
FOURTH_KEY = "sk-test-FAKEKEY-e2e-fourth-99887766554433221100"


def pods(kube: Kube) -> list[Any]:
    return proxy_pods(kube, NS)


def readiness(kube: Kube) -> dict[str, dict[str, Any]]:
    """Pod name → its /readyz body ({} when it does not answer)."""
    found: dict[str, dict[str, Any]] = {}
    for pod in pods(kube):
        try:
            body = httpx.get(f"http://{pod.status.pod_ip}:8080/readyz", timeout=2).json()
            found[pod.metadata.name] = body if isinstance(body, dict) else {}
        except (httpx.HTTPError, ValueError):
            found[pod.metadata.name] = {}
    return found


def served_fingerprints(kube: Kube) -> dict[str, str | None]:
    """Pod name → the key fingerprint its /readyz reports (None when it does not answer)."""
    return {name: body.get("keyFingerprint") for name, body in readiness(kube).items()}


def env_of(kube: Kube) -> dict[str, str]:
    env = kube.apps.read_namespaced_deployment(PROXY, NS).spec.template.spec.containers[0].env
    return {e.name: e.value for e in env}


def wait_for_rollout_end(kube: Kube, timeout: float = 90) -> None:
    """Until the old pods of a rollout are gone: a terminating pod still takes calls for
    its preStop sleep, and a rotation's per-pod check must see only the pods that stay."""
    deadline = time.monotonic() + timeout
    selector = f"app.kubernetes.io/name={PROXY}"

    def ended() -> bool:
        # Every replica from the new template and available (a pod count alone can dip to
        # the replica count between an old pod's exit and the next new pod's creation).
        deployment = kube.apps.read_namespaced_deployment(PROXY, NS)
        status = deployment.status
        rolled = (
            (status.observed_generation or 0) >= deployment.metadata.generation
            and status.updated_replicas == REPLICAS
            and status.available_replicas == REPLICAS
            and (status.replicas or 0) == REPLICAS
        )
        listed = kube.core.list_namespaced_pod(NS, label_selector=selector).items
        return rolled and len(listed) == REPLICAS

    while not ended():
        assert time.monotonic() < deadline, "the proxy's rollout has not ended"
        time.sleep(0.5)


def pod_log(kube: Kube, pod: Any) -> list[dict[str, Any]]:
    text = kube.core.read_namespaced_pod_log(pod.metadata.name, NS, container="proxy")
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def wait_for_key_source(kube: Kube, source: str, timeout: float = 30) -> dict[str, Any]:
    """Every pod's /readyz once all say `keySource` = source (the watch lists at start)."""
    deadline = time.monotonic() + timeout
    while True:
        found = readiness(kube)
        if found and all(body.get("keySource") == source for body in found.values()):
            return found
        assert time.monotonic() < deadline, f"not every pod serves from {source}: {found}"
        time.sleep(0.2)


@dataclass
class Rotation:
    """One rotation under load: when the first and the last pod served the new key."""

    first_new: float
    last_new: float
    requests: int


def rotate_under_load(
    workspace: Workspace, kube: Kube, node: dict[str, str], old_key: str, new_key: str, bound: float
) -> Rotation:
    """`pulumi up` a new key under steady load; assert 0 failed calls, no restart, the Secret
    updated in place, and every pod OLD→NEW exactly once; return the measured times."""
    old, new = key_fingerprint(old_key), key_fingerprint(new_key)
    assert set(served_fingerprints(kube).values()) == {old}
    secret_uid = kube.core.read_namespaced_secret(SECRET, NS).metadata.uid
    before = {pod.metadata.name: pod.metadata.uid for pod in pods(kube)}
    began = time.time()
    load = SteadyLoad(service_url(kube), rate=10, max_seconds=bound + 120).start()
    first_new: float | None = None
    try:
        time.sleep(3)  # traffic flowing before the change
        workspace.set_secret("openaiKey", new_key, STACK)
        workspace.run("up", "--yes", "--skip-preview", "--stack", STACK)
        up_returned = time.monotonic()
        deadline = up_returned + bound
        served = served_fingerprints(kube)
        while time.monotonic() < deadline:
            now = time.monotonic() - up_returned
            if first_new is None and new in served.values():
                first_new = now
            if set(served.values()) == {new}:
                break
            time.sleep(0.05)
            served = served_fingerprints(kube)
        last_new = time.monotonic() - up_returned
        assert set(served.values()) == {new}, (
            f"{bound}s after `pulumi up` returned some pods still serve the old key: {served}"
        )
        if first_new is None:
            first_new = last_new
        time.sleep(3)  # traffic after every pod switched
    finally:
        outcomes = load.stop()
    print(
        f"\nrotation: first pod on the new key {first_new:.2f}s, last {last_new:.2f}s after "
        f"`pulumi up` returned; {len(outcomes)} requests, {len(load.failures())} failed"
    )

    assert len(outcomes) > 50
    assert load.failures() == []
    assert kube.core.read_namespaced_secret(SECRET, NS).metadata.uid == secret_uid
    after = pods(kube)
    assert {pod.metadata.name: pod.metadata.uid for pod in after} == before
    assert all(pod.status.container_statuses[0].restart_count == 0 for pod in after)
    for pod in after:  # one reload per pod to this key, whichever worker answers /readyz
        reloads = [line for line in pod_log(kube, pod) if line["event"] == "key_reloaded"]
        assert [line["keyFingerprint"] for line in reloads].count(new) == 1
        workers = {}
        for _ in range(30):
            body = httpx.get(f"http://{pod.status.pod_ip}:8080/readyz", timeout=2).json()
            workers[body.get("worker")] = body["keyFingerprint"]
        assert workers == dict.fromkeys(workers, new)
        assert len(workers) == int(env_of(kube)["LLM_PROXY_WORKERS"])

    # Each pod (by its address) switched from the old key to the new one once, never back.
    calls = upstream_calls(node["LLM_GATEWAY_NODE_UPSTREAM_RECORD"], began)
    by_pod: dict[str, list[str]] = {}
    for call in calls:
        by_pod.setdefault(call["client"], []).append(call["keyFingerprint"])
    pod_ips = {pod.status.pod_ip for pod in after}
    assert set(by_pod) == pod_ips
    for ip, seen in by_pod.items():
        assert set(seen) <= {old, new}, f"{ip} sent a key that is neither"
        switches = sum(1 for a, b in itertools.pairwise(seen) if a != b)
        summary = f"{ip}: {seen.count(old)} old, {seen.count(new)} new, {switches} switches"
        assert seen[-1] == new, summary
        assert switches == 1, summary
    return Rotation(first_new, last_new, len(outcomes))


def service_url(kube: Kube) -> str:
    return proxy_service_url(kube, NS)


def test_up_with_two_replicas(
    workspace: Workspace, kube: Kube, kubeconfig: str, node: dict[str, str]
) -> None:
    workspace.forbidden += [THIRD_KEY, FOURTH_KEY]
    up_node_stack(workspace, STACK, NS, kubeconfig, node, proxy=PROXY_SETTINGS)
    assert len(pods(kube)) == REPLICAS
    assert set(served_fingerprints(kube).values()) == {key_fingerprint(FAKE_KEY)}
    for pod in pods(kube):
        (listening,) = [line for line in pod_log(kube, pod) if line["event"] == "listening"]
        assert listening["workers"] == WORKERS
    for body in wait_for_key_source(kube, "api").values():
        assert body["keyApi"] == "watching"


def test_rotation_under_load_lands_on_every_pod_within_seconds(
    workspace: Workspace, kube: Kube, node: dict[str, str]
) -> None:
    keys = [FAKE_KEY, ROTATED_KEY, THIRD_KEY, FOURTH_KEY][: API_RUNS + 1]
    runs = [
        rotate_under_load(workspace, kube, node, old, new, ROTATION_BOUND_S)
        for old, new in itertools.pairwise(keys)
    ]
    firsts = ", ".join(f"{r.first_new:.2f}" for r in runs)
    lasts = ", ".join(f"{r.last_new:.2f}" for r in runs)
    print(f"\nkeySource api, {WORKERS} workers per pod: first pod {firsts} s, last pod {lasts} s")
    for run in runs:
        assert run.last_new <= API_ROTATION_BOUND_S, runs

    # The smoke output now proves the new key is live in every pod, with no extra typing.
    done = run_smoke_output(workspace, STACK)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    assert f"ok: every proxy pod ({REPLICAS}) serves key {key_fingerprint(keys[-1])}" in (
        done.stdout
    )


def test_rotation_with_one_worker_per_pod_lands_within_seconds(
    workspace: Workspace, kube: Kube, node: dict[str, str]
) -> None:
    # limits.cpu 1 → one proxy process per pod (no supervisor): the watch runs on its loop.
    cpu = "proxy.resources.limits.cpu"
    workspace.run("config", "set", "--path", "--stack", STACK, cpu, "1000m")
    workspace.run("up", "--yes", "--skip-preview", "--stack", STACK)
    wait_for_rollout_end(kube)
    assert env_of(kube)["LLM_PROXY_WORKERS"] == "1"
    wait_for_key_source(kube, "api")
    run = rotate_under_load(workspace, kube, node, FOURTH_KEY, ROTATED_KEY, ROTATION_BOUND_S)
    first, last = run.first_new, run.last_new
    print(f"\nkeySource api, 1 worker per pod: first {first:.2f} s, last {last:.2f} s")
    assert run.last_new <= API_ROTATION_BOUND_S


def test_key_source_file_still_rotates_at_the_kubelets_sync(
    workspace: Workspace, kube: Kube, node: dict[str, str]
) -> None:
    # The mount alone, back to two workers per pod (what the later tests expect).
    for path, value in (
        ("proxy.keySource", "file"),
        ("proxy.resources.limits.cpu", f"{WORKERS}000m"),
    ):
        workspace.run("config", "set", "--path", "--stack", STACK, path, value)
    workspace.run("up", "--yes", "--skip-preview", "--stack", STACK)
    wait_for_rollout_end(kube)
    assert all("keySource" not in body for body in readiness(kube).values())
    run = rotate_under_load(workspace, kube, node, ROTATED_KEY, THIRD_KEY, ROTATION_BOUND_S)
    print(f"\nkeySource file: first {run.first_new:.1f} s, last {run.last_new:.1f} s")
    done = run_smoke_output(workspace, STACK)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]


def test_the_smoke_key_check_fails_naming_one_stale_pod(workspace: Workspace, kube: Kube) -> None:
    """The smokeTest output's last line (every proxy pod serves the stack's key) must fail
    when one pod does not: a pod like the Deployment's, but on a Secret with the old key."""
    template = kube.apps.read_namespaced_deployment(PROXY, NS).spec.template
    kube.core.create_namespaced_secret(
        NS, {"metadata": {"name": "stale-key"}, "stringData": {"apiKey": FAKE_KEY}}
    )
    spec = kube.api.sanitize_for_serialization(template.spec)  # type: ignore[no-untyped-call]
    for volume in spec["volumes"]:
        if "secret" in volume:
            volume["secret"]["secretName"] = "stale-key"
    for container in spec["containers"]:  # the mounted file is its only key source
        env = [e for e in container["env"] if e["name"] not in ("LLM_PROXY_KEY_SOURCE",)]
        container["env"] = [*env, {"name": "LLM_PROXY_KEY_SOURCE", "value": "file"}]
    stale = {"metadata": {"name": "llm-proxy-stale", "labels": template.metadata.labels}}
    kube.core.create_namespaced_pod(NS, {**stale, "spec": spec})
    try:
        deadline = time.monotonic() + 120
        while not _ready(kube.core.read_namespaced_pod("llm-proxy-stale", NS)):
            assert time.monotonic() < deadline, "the stale pod never became ready"
            time.sleep(1)
        served = served_fingerprints(kube)["llm-proxy-stale"]
        assert served == key_fingerprint(FAKE_KEY)  # stale for its key, not for being down
        smoke = workspace.run("stack", "output", "smokeTest", "--stack", STACK).stdout
        key_check = smoke.strip().splitlines()[-1]
        assert "every proxy pod" in key_check
        # One try instead of a 180 s wait: the stale pod will not change its key.
        one_try = key_check.replace("$(seq 36)", "$(seq 1)")
        assert one_try != key_check
        done = subprocess.run(
            ["bash", "-ec", one_try],
            env=workspace.env(),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 1, done.stdout + done.stderr
        # The stack's key, whichever rotation the earlier scenarios ended on.
        expected = workspace.run("stack", "output", "keyFingerprint", "--stack", STACK).stdout
        expected = expected.strip()
        assert expected == key_fingerprint(THIRD_KEY)
        assert f"1 of {REPLICAS + 1} running proxy pods do not serve key {expected}" in done.stderr
        assert FAKE_KEY not in done.stdout + done.stderr
    finally:
        kube.core.delete_namespaced_pod("llm-proxy-stale", NS, grace_period_seconds=0)
        kube.core.delete_namespaced_secret("stale-key", NS)
        assert kube.wait_gone("Pod", "llm-proxy-stale", NS, timeout=60)


def _ready(pod: Any) -> bool:
    statuses = pod.status.container_statuses or []
    return bool(statuses) and all(status.ready for status in statuses)


def test_kill_switch_cuts_traffic_once_the_pods_drain_and_restore_brings_it_back(
    workspace: Workspace, kube: Kube
) -> None:
    url = service_url(kube)
    chat = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    workspace.run("config", "set", "--stack", STACK, "killSwitch", "true")
    workspace.run("up", "--yes", "--skip-preview", "--stack", STACK)
    up_returned = time.monotonic()
    # Terminating pods still serve (kube-proxy keeps serving-terminating endpoints when no
    # other is left) until their preStop sleep and drain are over: traffic stops then.
    first_failure: float | None = None
    while first_failure is None and time.monotonic() - up_returned < TERMINATION_GRACE_SECONDS + 15:
        sent = time.monotonic()
        try:
            httpx.post(f"{url}/chat/completions", json=chat, timeout=10).raise_for_status()
        except (httpx.ConnectError, httpx.ReadError):
            # No pod behind the Service: kube-proxy rejects the connection at once, no hang.
            # (A connection still in a stopping pod's accept queue is reset at once; one
            # sent to a pod just removed, before the node drops its address, fails when ARP
            # gives up, ~3 s: "No route to host". A hang would be the 10 s timeout.)
            assert time.monotonic() - sent < 5
            first_failure = time.monotonic() - up_returned
        else:
            time.sleep(0.2)
    print(f"\nkill switch: calls fail {first_failure}s after `pulumi up` returned")
    assert first_failure is not None, "calls still succeed after every pod's grace period"
    # Idle between these calls, a pod drains at once after its preStop sleep. A drain that
    # hangs until the kubelet's SIGKILL (the grace period, 30 s) must fail here, not pass
    # under the loop's bound.
    assert first_failure < PRE_STOP_SLEEP_SECONDS + 10, (
        f"calls stopped {first_failure:.1f} s after `pulumi up`: the pods did not drain after "
        f"their {PRE_STOP_SLEEP_SECONDS} s preStop sleep (grace: {TERMINATION_GRACE_SECONDS} s)"
    )
    assert kube.apps.read_namespaced_deployment(PROXY, NS).spec.replicas == 0
    with pytest.raises(httpx.ConnectError):  # and it stays cut
        httpx.post(f"{url}/chat/completions", json=chat, timeout=10)
    done = run_smoke_output(workspace, STACK)  # which says why
    assert done.returncode == 1
    assert "killSwitch is on" in done.stderr

    workspace.run("config", "set", "--stack", STACK, "killSwitch", "false")
    workspace.run("up", "--yes", "--skip-preview", "--stack", STACK)
    reply = httpx.post(f"{url}/chat/completions", json=chat, timeout=10)
    assert reply.status_code == 200
    assert reply.json()["choices"][0]["message"]["content"] == "pong"


def test_destroy_under_traffic_leaves_nothing(workspace: Workspace, kube: Kube) -> None:
    load = SteadyLoad(service_url(kube), rate=5, max_seconds=120).start()
    try:
        workspace.run("destroy", "--yes", "--skip-preview", "--stack", STACK)
    finally:
        load.stop()
    assert kube.wait_gone("Namespace", NS, timeout=120)
