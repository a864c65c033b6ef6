"""keySource api on the real node: the proxy's access is exactly its one Secret, the watch
outlives an API server restart (an update made as the server comes back is served), and a
proxy that starts while the API server is down serves the mounted key.

The API server is stopped and started with scripts/local-node/control-plane.sh (same flags, port
and etcd); the proxy container is restarted by killing its processes, found through the
node's cgroups, so the kubelet starts it again while the API server is away. Tests run in
file order on one stack, `watch`, with one proxy pod.
"""

from __future__ import annotations

import base64
import os
import signal
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from kubernetes import client

from proxy.fingerprint import key_fingerprint
from tests.e2e.e2e_kube import Kube
from tests.e2e.e2e_node import proxy_pods, up_node_stack
from tests.e2e.e2e_pulumi import FAKE_KEY, REPO_ROOT, Workspace

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("node")]

STACK = "watch"
NS = "llm-gateway-watch"
SECRET, OTHER = "openai-api-key", "not-the-proxys"
ACCOUNT = f"system:serviceaccount:{NS}:llm-proxy"
OUTAGE_KEY = "sk-test-FAKEKEY-e2e-outage-5566778899aabbccdd"
CONTROL_PLANE = REPO_ROOT / "scripts" / "local-node" / "control-plane.sh"
# The pod reaches the API server through the `kubernetes` ClusterIP. A stopping API server
# empties that Service's endpoints, so after a restart the route returns only once
# kube-proxy has relisted them, after its own watch backoff (client-go: up to 30 s, with
# jitter up to 2x): seen at 4 s and at over 30 s. That is the node's time, bounded loosely
# and printed; the proxy is judged from the moment the route is back.
ROUTE_BOUND_S = 90
# Once the route is back: the watch's backoff (<= 5 s, proxy/secret_watch.py), its
# reconnect and list.
RESUME_BOUND_S = 15


def state_dir() -> Path:
    """The cluster's state dir (scripts/local-node/cluster.sh): where its kubeconfig lives."""
    return Path(os.environ["LLM_GATEWAY_E2E_KUBECONFIG"]).parent


def control_plane(action: str) -> None:
    subprocess.run(
        [str(CONTROL_PLANE), action, str(state_dir())],
        check=True,
        timeout=180,
        capture_output=True,
    )


@pytest.fixture
def api_outage() -> Iterator[None]:
    """The API server down for the test's body, and up again after it whatever happens."""
    control_plane("apiserver-stop")
    try:
        yield
    finally:
        control_plane("apiserver-start")


def the_pod(kube: Kube) -> Any:
    (pod,) = proxy_pods(kube, NS)
    return pod


def readyz(ip: str) -> dict[str, Any] | None:
    try:
        body = httpx.get(f"http://{ip}:8080/readyz", timeout=2).json()
    except (httpx.HTTPError, ValueError):
        return None
    return body if isinstance(body, dict) else None


def wait_readyz(ip: str, check: Any, seconds: float) -> tuple[float, dict[str, Any]]:
    """Seconds until the pod's /readyz satisfies `check`, and that body."""
    began = time.monotonic()
    last = None
    while time.monotonic() - began < seconds:
        last = readyz(ip)
        if last is not None and check(last):
            return time.monotonic() - began, last
        time.sleep(0.1)
    raise AssertionError(f"/readyz of {ip} after {seconds} s: {last}")


def route_open(address: tuple[str, int]) -> bool:
    """True once a TCP connect to `address` is accepted.

    The test runs in the node's network namespace, where kube-proxy's rules apply to local
    traffic as to a pod's: a Service without endpoints REJECTs (connection refused).
    """
    try:
        socket.create_connection(address, timeout=1).close()
    except OSError:
        return False
    return True


def api_service_address(kube: Kube) -> tuple[str, int]:
    """The `kubernetes` Service's ClusterIP and port: the pod's way to the API server."""
    service = kube.core.read_namespaced_service("kubernetes", "default")
    return service.spec.cluster_ip, service.spec.ports[0].port


def wait_route(address: tuple[str, int]) -> float:
    """Seconds until `address` (the API server's ClusterIP) routes to the API server again."""
    began = time.monotonic()
    while not route_open(address):
        waited = time.monotonic() - began
        assert waited < ROUTE_BOUND_S, f"no route to the API server at {address}: {waited:.0f} s"
        time.sleep(0.1)
    return time.monotonic() - began


def container_pids(container_id: str) -> set[int]:
    """The processes of one container, from the node's cgroups (cgroupfs driver)."""
    root = (state_dir() / "cgroup-root").read_text().strip().lstrip("/")
    pids: set[int] = set()
    for hierarchy in Path("/sys/fs/cgroup").iterdir():
        base = hierarchy / root
        if base.is_dir():
            for procs in base.rglob(f"{container_id}/cgroup.procs"):
                pids |= {int(p) for p in procs.read_text().split()}
    return pids


def test_up_watches_the_secret(
    workspace: Workspace, kube: Kube, kubeconfig: str, node: dict[str, str]
) -> None:
    workspace.forbidden.append(OUTAGE_KEY)
    up_node_stack(workspace, STACK, NS, kubeconfig, node)
    ip = the_pod(kube).status.pod_ip
    _, body = wait_readyz(ip, lambda b: b.get("keySource") == "api", 30)
    assert body["keyFingerprint"] == key_fingerprint(FAKE_KEY)
    assert body["keyApi"] == "watching"


def test_the_proxy_account_reads_its_secret_and_no_other(kube: Kube) -> None:
    kube.core.create_namespaced_secret(
        NS, {"metadata": {"name": OTHER}, "stringData": {"apiKey": "not-for-the-proxy"}}
    )
    authz: Any = client.AuthorizationV1Api(kube.api)
    groups = ["system:serviceaccounts", f"system:serviceaccounts:{NS}", "system:authenticated"]

    def allowed(verb: str, name: str | None) -> bool:
        review = {
            "spec": {
                "user": ACCOUNT,
                "groups": groups,
                "resourceAttributes": {
                    "namespace": NS,
                    "verb": verb,
                    "resource": "secrets",
                    **({"name": name} if name else {}),
                },
            }
        }
        return bool(authz.create_subject_access_review(review).status.allowed)

    for verb in ("get", "list", "watch"):
        assert allowed(verb, SECRET), verb
    assert not allowed("get", OTHER)
    assert not allowed("list", None)  # every Secret of the namespace: no
    assert not allowed("watch", None)
    for verb in ("update", "patch", "delete", "create"):
        assert not allowed(verb, SECRET), verb

    # A real request with the account's own token (as the pod holds it).
    token = kube.core.create_namespaced_service_account_token(
        "llm-proxy", NS, {"spec": {"expirationSeconds": 600}}
    ).status.token
    config = kube.api.configuration
    base = f"{config.host}/api/v1/namespaces/{NS}/secrets"
    trusted = ssl.create_default_context(cafile=config.ssl_ca_cert)
    with httpx.Client(verify=trusted, timeout=10) as http:
        headers = {"Authorization": f"Bearer {token}"}
        assert http.get(f"{base}/{OTHER}", headers=headers).status_code == 403
        assert http.get(base, headers=headers).status_code == 403
        assert http.get(f"{base}/{SECRET}", headers=headers).status_code == 200
        by_name = {"fieldSelector": f"metadata.name={SECRET}"}
        assert http.get(base, headers=headers, params=by_name).status_code == 200
    print(f"\nRBAC: {ACCOUNT} may get/list/watch {SECRET} only; {OTHER} and listing all: 403")


def test_with_the_api_down_at_start_the_proxy_serves_the_mounted_key(kube: Kube) -> None:
    pod = the_pod(kube)
    ip, restarts = pod.status.pod_ip, pod.status.container_statuses[0].restart_count
    container_id = pod.status.container_statuses[0].container_id.split("://", 1)[1]
    pids = container_pids(container_id)
    assert pids, f"no processes found for container {container_id}"
    api = api_service_address(kube)
    control_plane("apiserver-stop")
    try:
        for pid in pids:  # the proxy's supervisor and workers, killed: the kubelet restarts it
            os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while readyz(ip) is not None and time.monotonic() < deadline:
            time.sleep(0.05)  # the old process is gone...
        took, body = wait_readyz(ip, lambda b: b.get("status") == "ready", 90)  # ...a new one
        print(f"\nAPI down at start: the restarted proxy served the mounted key after {took:.1f} s")
        assert body["keyFingerprint"] == key_fingerprint(FAKE_KEY)
        assert body["keySource"] == "file"
        assert body["keyApi"].startswith(("broken: ", "connecting")), body
        assert container_pids(container_id) == set()  # it is really a new container
    finally:
        control_plane("apiserver-start")
    route = wait_route(api)
    took, body = wait_readyz(ip, lambda b: b.get("keySource") == "api", RESUME_BOUND_S)
    print(f"API back: its ClusterIP route after {route:.1f} s, the watch {took:.1f} s later")
    assert body["keyFingerprint"] == key_fingerprint(FAKE_KEY)
    deadline = time.monotonic() + 30  # the kubelet reports the restart once it can
    while the_pod(kube).status.container_statuses[0].restart_count != restarts + 1:
        assert time.monotonic() < deadline, "the kubelet reported no container restart"
        time.sleep(0.5)


def test_the_watch_survives_an_api_server_restart_and_serves_an_update_made_then(
    kube: Kube,
) -> None:
    ip = the_pod(kube).status.pod_ip
    wait_readyz(ip, lambda b: b.get("keySource") == "api", 30)
    api = api_service_address(kube)
    control_plane("apiserver-stop")
    try:
        time.sleep(2)
        assert not route_open(api)  # what wait_route below waits for is really gone
        during = readyz(ip)
        assert during is not None
        assert during["status"] == "ready"  # the last key stays served through the outage
        assert during["keyFingerprint"] == key_fingerprint(FAKE_KEY)
    finally:
        control_plane("apiserver-start")
    # Updated the moment the server is back, while the proxy's watch is still backing off.
    watch_state = (readyz(ip) or {}).get("keyApi")
    data = {"apiKey": base64.b64encode(OUTAGE_KEY.encode()).decode()}
    kube.core.patch_namespaced_secret(SECRET, NS, {"data": data})
    route = wait_route(api)
    took, body = wait_readyz(
        ip, lambda b: b.get("keyFingerprint") == key_fingerprint(OUTAGE_KEY), RESUME_BOUND_S
    )
    print(
        f"\nAPI server restart: the update made as it came back (watch then: {watch_state!r}) "
        f"served {took:.1f} s after the ClusterIP route returned ({route:.1f} s after the patch)"
    )
    assert body["keySource"] == "api"
    assert body["keyApi"] == "watching"
    assert the_pod(kube).status.container_statuses[0].restart_count == 1  # from the test above


def test_destroy_removes_the_role_and_binding(workspace: Workspace, kube: Kube) -> None:
    rbac: Any = client.RbacAuthorizationV1Api(kube.api)
    assert [r.metadata.name for r in rbac.list_namespaced_role(NS).items] == [
        "llm-proxy-key-reader"
    ]
    workspace.run("destroy", "--yes", "--skip-preview", "--stack", STACK)
    assert kube.wait_gone("Namespace", NS, timeout=120)
