"""The dev stack's whole life with the real engine: up, rotate, kill, restore, destroy.

The tests run in file order on one stack and build on each other (each step needs the
previous one's cluster state); `facts` carries uids/resourceVersions between them.
"""

from __future__ import annotations

import base64
import contextlib
import re
from typing import Any

import pytest

from proxy.fingerprint import key_fingerprint
from tests.e2e import agentgateway_status as agw_status
from tests.e2e.agentgateway_admin import Admin, KeyArrival, admin_url, require_admin
from tests.e2e.e2e_kube import Kube
from tests.e2e.e2e_pulumi import FAKE_KEY, ROTATED_KEY, Workspace, init_stack

pytestmark = pytest.mark.e2e

STACK = "dev"
NS = "llm-gateway-dev"  # stacks/Pulumi.dev.yaml
SECRET, KEY_FIELD = "openai-api-key", "apiKey"
PROXY, GATEWAY, ROUTE, BACKEND = "llm-proxy", "llm-gateway", "llm-gateway", "openai"
SECRET_TYPE = "kubernetes:core/v1:Secret"
LISTENER = "http"
# What the controller makes of the backend's policies.ai.routes (its RouteType enum names).
ROUTE_TYPES = {
    "/v1/chat/completions": "COMPLETIONS",
    "/v1/embeddings": "EMBEDDINGS",
    "/v1/models": "MODELS",
    "/v1/responses": "RESPONSES",
    "*": "PASSTHROUGH",
}
ROTATION_TIMEOUT_S = 60.0
# The image of the data-plane Deployment the controller makes per Gateway (the registry and
# tag scripts/local-node/agentgateway-controller.sh configures).
DATA_PLANE_IMAGE = "127.0.0.1:5000/agentgateway:v1.4.1"
RESOURCE_LINE = re.compile(
    r"^\s*[-+~]*\s*(?P<type>[\w.-]+:[\w/.-]+:[\w.-]+): \((?P<op>[\w-]+)\)$", re.M
)

facts: dict[str, Any] = {}


def _secret_value(kube: Kube) -> str:
    secret = kube.get("Secret", SECRET, NS)
    assert secret is not None
    return base64.b64decode(secret["data"][KEY_FIELD]).decode()


# The agentgateway controller writes status on these (the listener's attachedRoutes drops to
# 0 under the kill switch), which moves their resourceVersion with no change of ours; status
# writes never bump metadata.generation, so uid + generation is their identity here.
STATUS_WRITTEN_KINDS = frozenset({"Gateway", "AgentgatewayBackend"})


def _versions(kube: Kube) -> dict[str, str]:
    """Version of every object the stack keeps through rotation and kill switch:
    resourceVersion, or uid/generation for objects a controller writes status on."""
    out = {}
    for kind, name in [
        ("Namespace", NS),
        ("Gateway", GATEWAY),
        ("AgentgatewayBackend", BACKEND),
        ("Service", PROXY),
        ("ServiceAccount", PROXY),
    ]:
        obj = kube.get(kind, name, None if kind == "Namespace" else NS)
        assert obj is not None, f"{kind}/{name} missing"
        meta = obj["metadata"]
        if kind in STATUS_WRITTEN_KINDS:
            out[kind] = f"{meta['uid']}/{meta['generation']}"
        else:
            out[kind] = meta["resourceVersion"]
    return out


def _preview_ops(ws: Workspace) -> dict[str, list[str]]:
    """`pulumi preview --json`: resource type → ops planned for it (same steps omitted)."""
    plan = ws.run("preview", "--json", "--stack", STACK).json()
    ops: dict[str, list[str]] = {}
    for step in plan.get("steps", []):
        if step["op"] == "same":
            continue
        state = step.get("newState") or step.get("oldState") or {}
        ops.setdefault(state.get("type", step["urn"]), []).append(step["op"])
    return ops


def test_up_creates_every_object(workspace: Workspace, kube: Kube, kubeconfig: str) -> None:
    assert kube.get("Namespace", NS) is None, "leftover namespace from an earlier run"
    init_stack(workspace, STACK, kubeconfig)
    workspace.run("up", "--yes", "--skip-preview", "--stack", STACK)

    ns = kube.get("Namespace", NS)
    assert ns is not None
    assert ns["metadata"]["annotations"]["pulumi.com/skipAwait"] == "true"

    secret = kube.get("Secret", SECRET, NS)
    assert secret is not None
    assert secret["type"] == "Opaque"
    assert list(secret["data"]) == [KEY_FIELD]
    assert _secret_value(kube) == FAKE_KEY

    backend = kube.get("AgentgatewayBackend", BACKEND, NS)
    assert backend is not None
    assert backend["spec"]["policies"]["auth"]["secretRef"] == {"name": SECRET, "key": KEY_FIELD}
    assert backend["spec"]["ai"]["provider"]["openai"]["model"] == "gpt-4o-mini"

    gateway = kube.get("Gateway", GATEWAY, NS)
    assert gateway is not None
    assert gateway["spec"]["gatewayClassName"] == "agentgateway"
    assert [(li["port"], li["protocol"]) for li in gateway["spec"]["listeners"]] == [(80, "HTTP")]

    route = kube.get("HTTPRoute", ROUTE, NS)
    assert route is not None
    assert [p["name"] for p in route["spec"]["parentRefs"]] == [GATEWAY]
    refs = [ref for rule in route["spec"]["rules"] for ref in rule["backendRefs"]]
    assert [(r["group"], r["kind"], r["name"]) for r in refs] == [
        ("agentgateway.dev", "AgentgatewayBackend", BACKEND)
    ]

    deployment = kube.get("Deployment", PROXY, NS)
    assert deployment is not None
    assert deployment["spec"]["replicas"] == 1
    pod = deployment["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    (container,) = pod["containers"]
    assert container["command"] == ["python", "-m", "proxy", "serve"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["LLM_PROXY_HOST"] == "0.0.0.0"
    assert env["LLM_PROXY_KEY_FILE"] == "/etc/llm-gateway/secret/apiKey"
    assert FAKE_KEY not in str(container), "the key must reach the pod only as a file"
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    key_mount = mounts["/etc/llm-gateway/secret"]
    assert key_mount.get("readOnly") is True
    assert "subPath" not in key_mount
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes[key_mount["name"]]["secret"]["secretName"] == SECRET
    assert container["securityContext"]["readOnlyRootFilesystem"] is True

    service = kube.get("Service", PROXY, NS)
    assert service is not None
    assert [(p["port"], p["targetPort"]) for p in service["spec"]["ports"]] in (
        [(80, "http")],
        [(80, 8080)],
    )
    account = kube.get("ServiceAccount", PROXY, NS)
    assert account is not None
    assert account["automountServiceAccountToken"] is False
    # dev runs one replica: no PodDisruptionBudget (it would block every drain).
    assert kube.get("PodDisruptionBudget", PROXY, NS) is None

    outputs = workspace.run("stack", "output", "--json", "--stack", STACK).json()
    assert outputs["keyFingerprint"] == key_fingerprint(FAKE_KEY)
    assert outputs["namespace"] == NS
    assert outputs["secretName"] == SECRET
    assert outputs["killSwitch"] is False


def _translated(admin: Admin, key: str) -> Any:
    """The controller's translation of our backend once it carries `key` (waits)."""
    backend, _ = admin.wait_for(
        f"backend {NS}/{BACKEND} with the key fingerprinted {key_fingerprint(key)}",
        lambda snap: b if (b := snap.backend(NS, BACKEND)) and b.key_matches(key) else None,
    )
    return backend


def _route_attached(kube: Kube) -> None:
    """The controller accepted the route on the Gateway and resolved its backend."""
    agw_status.wait_conditions(
        f"HTTPRoute {ROUTE} parent {GATEWAY}",
        lambda: agw_status.parent_conditions(kube, ROUTE, NS, GATEWAY),
        {"Accepted": "True", "ResolvedRefs": "True"},
    )
    agw_status.eventually(
        f"listener {LISTENER} attachedRoutes == 1",
        lambda: agw_status.listener_routes(kube, GATEWAY, NS, LISTENER),
        lambda n: n == 1,
    )


def test_up_controller_accepts_and_translates(kube: Kube) -> None:
    admin = require_admin()
    agw_status.wait_conditions(
        "GatewayClass agentgateway", lambda: agw_status.class_conditions(kube), {"Accepted": "True"}
    )
    agw_status.wait_conditions(
        f"Gateway {GATEWAY}",
        lambda: agw_status.object_conditions(kube, "Gateway", GATEWAY, NS),
        {"Accepted": "True", "Programmed": "True"},
    )
    agw_status.wait_conditions(
        f"AgentgatewayBackend {BACKEND}",
        lambda: agw_status.object_conditions(kube, "AgentgatewayBackend", BACKEND, NS),
        {"Accepted": "True"},
    )
    _route_attached(kube)
    # Programmed=True says the controller accepted and translated the Gateway, not that a
    # data plane serves it: the Deployment it made for the Gateway pulls from the node's own
    # registry, which lacks that image (agentgateway-controller.sh), so no pod is ever ready,
    # and the Gateway has no address.
    data_plane = kube.get("Deployment", GATEWAY, NS)
    assert data_plane is not None
    (container,) = data_plane["spec"]["template"]["spec"]["containers"]
    assert container["image"] == DATA_PLANE_IMAGE
    assert not (data_plane.get("status") or {}).get("readyReplicas")
    gateway = kube.get("Gateway", GATEWAY, NS)
    assert gateway is not None
    assert not gateway["status"].get("addresses")

    backend = _translated(admin, FAKE_KEY)
    assert backend.provider == "openai"
    assert backend.model == "gpt-4o-mini"
    assert backend.route_types == ROUTE_TYPES
    # dev talks to api.openai.com: no host/port/path override, TLS is the provider's default.
    assert (backend.host, backend.port, backend.path_prefix) == (None, None, None)
    snapshot = admin.snapshot()
    routes = snapshot.routes(NS, ROUTE)
    assert [(r.gateway, r.path_prefixes, r.backends) for r in routes] == [
        (f"{NS}/{GATEWAY}", ("/",), (f"{NS}/{BACKEND}",))
    ], routes
    # What the data plane would get over xDS: bind, listener, route, backend, key inside.
    served = snapshot.served_versions(NS, GATEWAY)
    assert sorted(name.split("/")[0] for name in served) == ["backend", "bind", "listener", "route"]
    assert snapshot.serves_key((NS, GATEWAY), (NS, BACKEND), FAKE_KEY)
    facts.update(translation=backend.shape, routes=routes, served=served)


def test_state_holds_key_only_encrypted(workspace: Workspace) -> None:
    files = workspace.state_files()
    assert any(p.suffix == ".json" for p in files), "no checkpoint written"
    for path in files:
        assert FAKE_KEY not in path.read_text(errors="replace"), f"key in plaintext: {path}"
    exported = workspace.run("stack", "export", "--stack", STACK).stdout
    assert FAKE_KEY not in exported
    assert "ciphertext" in exported  # the Secret's inputs/outputs are stored encrypted
    stack_file = (workspace.project / "stacks" / f"Pulumi.{STACK}.yaml").read_text()
    assert FAKE_KEY not in stack_file
    assert "secure:" in stack_file


def _rotation_objects(kube: Kube) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """The Secret, the proxy Deployment and the route, each required to exist."""
    objects = (
        kube.get("Secret", SECRET, NS),
        kube.get("Deployment", PROXY, NS),
        kube.get("HTTPRoute", ROUTE, NS),
    )
    secret, deployment, route = objects
    assert secret is not None
    assert deployment is not None
    assert route is not None
    return secret, deployment, route


def test_rotation_plans_one_in_place_secret_update(workspace: Workspace, kube: Kube) -> None:
    secret, deployment, route = _rotation_objects(kube)
    facts.update(
        secret_uid=secret["metadata"]["uid"],
        generation=deployment["metadata"]["generation"],
        route_rv=route["metadata"]["resourceVersion"],
        versions=_versions(kube),
    )
    workspace.set_secret("openaiKey", ROTATED_KEY, STACK)

    diff = workspace.run("preview", "--diff", "--stack", STACK).stdout
    # Resource headers look like "~ kubernetes:core/v1:Secret: (update)".
    planned = [(m["type"], m["op"]) for m in RESOURCE_LINE.finditer(diff) if m["op"] != "same"]
    assert planned == [(SECRET_TYPE, "update")], diff
    assert "replace" not in diff.lower(), diff
    assert "~ 1 to update" in diff, diff

    assert _preview_ops(workspace) == {SECRET_TYPE: ["update"]}


def test_rotation_up_keeps_everything_but_the_key(workspace: Workspace, kube: Kube) -> None:
    # With the controller running, time the new key's way from the Secret to its translation.
    url = admin_url()
    arrival = (
        KeyArrival(Admin(url), kube.core, (NS, SECRET, KEY_FIELD), (NS, BACKEND), ROTATED_KEY)
        if url
        else None
    )
    with arrival or contextlib.nullcontext():
        workspace.run("up", "--yes", "--skip-preview", "--stack", STACK)
        if arrival is not None:
            arrival.wait(ROTATION_TIMEOUT_S)
    facts["arrival"] = arrival
    secret, deployment, route = _rotation_objects(kube)
    assert _secret_value(kube) == ROTATED_KEY
    assert secret["metadata"]["uid"] == facts["secret_uid"], "Secret was replaced"
    assert deployment["metadata"]["generation"] == facts["generation"], "proxy rolled"
    assert route["metadata"]["resourceVersion"] == facts["route_rv"]
    assert _versions(kube) == facts["versions"]
    outputs = workspace.run("stack", "output", "--json", "--stack", STACK).json()
    assert outputs["keyFingerprint"] == key_fingerprint(ROTATED_KEY)
    assert _preview_ops(workspace) == {}, "a second up must be a no-op"


def test_rotation_reaches_the_controller(kube: Kube, capsys: pytest.CaptureFixture[str]) -> None:
    admin = require_admin()
    arrival = facts.get("arrival")
    assert arrival is not None, "the rotation step ran without the controller"
    assert arrival.secret_at is not None, "the new key never showed in the Secret"
    assert arrival.translated_at is not None, (
        f"the new key did not reach the controller's translation within {ROTATION_TIMEOUT_S:.0f}s"
    )
    with capsys.disabled():
        print(
            f"\n[e2e] rotation: Secret → controller translation in {arrival.latency * 1000:.0f} ms"
        )
    backend = _translated(admin, ROTATED_KEY)
    assert backend.shape == facts["translation"], "rotation changed more than the key"
    snapshot = admin.snapshot()
    assert snapshot.routes(NS, ROUTE) == facts["routes"]
    assert snapshot.serves_key((NS, GATEWAY), (NS, BACKEND), ROTATED_KEY)
    assert not snapshot.serves_key((NS, GATEWAY), (NS, BACKEND), FAKE_KEY)
    # Only the backend's xDS resource changed version; bind, listener and route did not.
    served = snapshot.served_versions(NS, GATEWAY)
    changed = sorted(
        n for n in served.keys() | facts["served"].keys() if served.get(n) != facts["served"].get(n)
    )
    assert changed == [f"backend/{NS}/{BACKEND}"], changed
    facts["served"] = served
    _route_attached(kube)


def test_kill_switch_removes_route_and_scales_proxy_to_zero(
    workspace: Workspace, kube: Kube
) -> None:
    workspace.run("config", "set", "--stack", STACK, "killSwitch", "true")
    workspace.run("up", "--yes", "--skip-preview", "--stack", STACK)
    assert kube.get("HTTPRoute", ROUTE, NS) is None
    deployment = kube.get("Deployment", PROXY, NS)
    assert deployment is not None
    assert deployment["spec"]["replicas"] == 0
    secret = kube.get("Secret", SECRET, NS)
    assert secret is not None
    assert secret["metadata"]["uid"] == facts["secret_uid"]
    assert _secret_value(kube) == ROTATED_KEY
    assert _versions(kube) == facts["versions"], "kill switch touched more than route + replicas"
    assert workspace.run("stack", "output", "--json", "--stack", STACK).json()["killSwitch"]


def test_kill_switch_controller_drops_the_route(kube: Kube) -> None:
    admin = require_admin()
    admin.wait_for("route gone from the translation", lambda snap: not snap.routes(NS, ROUTE))
    agw_status.eventually(
        f"listener {LISTENER} attachedRoutes == 0",
        lambda: agw_status.listener_routes(kube, GATEWAY, NS, LISTENER),
        lambda n: n == 0,
    )
    # A backend no route references is not translated: the key leaves the served config too.
    snapshot = admin.snapshot()
    assert snapshot.backend(NS, BACKEND) is None
    assert sorted(snapshot.served_versions(NS, GATEWAY)) == [
        f"bind/80/{NS}/{GATEWAY}",
        f"listener/{NS}/{GATEWAY}.{LISTENER}",
    ]
    # The objects stay, accepted: restore needs only the route.
    assert agw_status.object_conditions(kube, "AgentgatewayBackend", BACKEND, NS)["Accepted"].true
    assert agw_status.object_conditions(kube, "Gateway", GATEWAY, NS)["Programmed"].true


def test_kill_switch_off_restores(workspace: Workspace, kube: Kube) -> None:
    workspace.run("config", "set", "--stack", STACK, "killSwitch", "false")
    workspace.run("up", "--yes", "--skip-preview", "--stack", STACK)
    route = kube.get("HTTPRoute", ROUTE, NS)
    assert route is not None
    refs = [ref["name"] for rule in route["spec"]["rules"] for ref in rule["backendRefs"]]
    assert refs == [BACKEND]
    deployment = kube.get("Deployment", PROXY, NS)
    assert deployment is not None
    assert deployment["spec"]["replicas"] == 1
    assert _versions(kube) == facts["versions"]


def test_kill_switch_off_controller_restores_the_route(kube: Kube) -> None:
    admin = require_admin()
    routes, _ = admin.wait_for("route back in the translation", lambda snap: snap.routes(NS, ROUTE))
    assert routes == facts["routes"]
    _route_attached(kube)
    assert _translated(admin, ROTATED_KEY).shape == facts["translation"]
    # The data plane gets back exactly what it had before the kill switch.
    admin.wait_for(
        "served config as before the kill switch",
        lambda snap: snap.served_versions(NS, GATEWAY) == facts["served"],
    )


def test_destroy_removes_everything(workspace: Workspace, kube: Kube) -> None:
    workspace.run("destroy", "--yes", "--skip-preview", "--stack", STACK)
    for kind, name in [
        ("Secret", SECRET),
        ("AgentgatewayBackend", BACKEND),
        ("Gateway", GATEWAY),
        ("HTTPRoute", ROUTE),
        ("Deployment", PROXY),
        ("Service", PROXY),
        ("ServiceAccount", PROXY),
    ]:
        assert kube.wait_gone(kind, name, NS, timeout=60), f"{kind}/{name} survived destroy"
    # The namespace controller (kube-controller-manager) finishes the namespace's deletion.
    assert kube.wait_gone("Namespace", NS, timeout=90), "namespace survived destroy"
    state = workspace.run("stack", "export", "--stack", STACK).json()
    assert state["deployment"].get("resources") in (None, [])


def test_destroy_controller_forgets_everything() -> None:
    admin = require_admin()
    admin.wait_for(
        "backend, route and served config gone",
        lambda snap: (
            snap.backend(NS, BACKEND) is None
            and not snap.routes(NS, ROUTE)
            and not snap.served(NS, GATEWAY)
        ),
    )
