"""The dev stack's whole life with the real engine: up, rotate, kill, restore, destroy.

The tests run in file order on one stack and build on each other (each step needs the
previous one's cluster state); `facts` carries uids/resourceVersions between them.
"""

from __future__ import annotations

import base64
import re
from typing import Any

import pytest

from proxy.fingerprint import key_fingerprint
from tests.e2e.e2e_kube import Kube
from tests.e2e.e2e_pulumi import FAKE_KEY, ROTATED_KEY, Workspace, init_stack

pytestmark = pytest.mark.e2e

STACK = "dev"
NS = "llm-gateway-dev"  # stacks/Pulumi.dev.yaml
SECRET, KEY_FIELD = "openai-api-key", "apiKey"
PROXY, GATEWAY, ROUTE, BACKEND = "llm-proxy", "llm-gateway", "llm-gateway", "openai"
SECRET_TYPE = "kubernetes:core/v1:Secret"
RESOURCE_LINE = re.compile(
    r"^\s*[-+~]*\s*(?P<type>[\w.-]+:[\w/.-]+:[\w.-]+): \((?P<op>[\w-]+)\)$", re.M
)

facts: dict[str, Any] = {}


def _secret_value(kube: Kube) -> str:
    secret = kube.get("Secret", SECRET, NS)
    assert secret is not None
    return base64.b64decode(secret["data"][KEY_FIELD]).decode()


def _versions(kube: Kube) -> dict[str, str]:
    """resourceVersion of every object the stack keeps through rotation and kill switch."""
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
        out[kind] = obj["metadata"]["resourceVersion"]
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
    workspace.run("up", "--yes", "--skip-preview", "--stack", STACK)
    secret, deployment, route = _rotation_objects(kube)
    assert _secret_value(kube) == ROTATED_KEY
    assert secret["metadata"]["uid"] == facts["secret_uid"], "Secret was replaced"
    assert deployment["metadata"]["generation"] == facts["generation"], "proxy rolled"
    assert route["metadata"]["resourceVersion"] == facts["route_rv"]
    assert _versions(kube) == facts["versions"]
    outputs = workspace.run("stack", "output", "--json", "--stack", STACK).json()
    assert outputs["keyFingerprint"] == key_fingerprint(ROTATED_KEY)
    assert _preview_ops(workspace) == {}, "a second up must be a no-op"


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
