"""Caller identity on the agentgateway plane: the real controller (v1.4.1) accepts and
translates the AgentgatewayPolicy the program declares (JWT with the cluster's issuer and
inline JWKS, authorization per app, per-app local rate limits).

The cluster's JWKS and issuer are read as the README tells users (`kubectl get --raw`).
No agentgateway data plane runs here, so what is shown is the controller's acceptance
(status ancestors) and the policy it serves over xDS to the Gateway's data plane.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from tests.e2e import agentgateway_status as agw_status
from tests.e2e.agentgateway_admin import require_admin
from tests.e2e.e2e_kube import Kube, kubectl_raw
from tests.e2e.e2e_pulumi import Workspace, init_stack, write_stack_file

pytestmark = pytest.mark.e2e

STACK = "agw-ident"
NS = f"llm-gateway-{STACK}"
GATEWAY, POLICY = "llm-gateway", "llm-gateway-identity"
CLIENTS = [
    {
        "name": "chat",
        "namespace": "team-ai",
        "serviceAccount": "chat",
        "requestsPerMinute": 600,
        "tokensPerMinute": 20000,
    },
    {"name": "notebooks", "namespace": "research", "serviceAccount": "jupyter"},
]


def ancestor_conditions(kube: Kube) -> dict[str, agw_status.Condition]:
    policy = kube.get("AgentgatewayPolicy", POLICY, NS) or {}
    for ancestor in (policy.get("status") or {}).get("ancestors") or []:
        if (ancestor.get("ancestorRef") or {}).get("name") == GATEWAY:
            return agw_status.conditions(ancestor)
    return {}


def test_the_identity_policy_is_accepted_and_served_to_the_gateway(
    workspace: Workspace, kube: Kube, kubeconfig: str
) -> None:
    admin = require_admin()
    jwks = kubectl_raw(kubeconfig, "/openid/v1/jwks")
    issuer = json.loads(kubectl_raw(kubeconfig, "/.well-known/openid-configuration"))["issuer"]
    overrides: dict[str, Any] = {
        "proxy": {"enabled": False},
        "identity": {"mode": "require", "issuer": issuer, "jwks": jwks},
    }
    write_stack_file(workspace, STACK, NS, overrides)
    stack_file = workspace.project / "stacks" / f"Pulumi.{STACK}.yaml"
    config = yaml.safe_load(stack_file.read_text())
    config["config"]["llm-gateway:clients"] = CLIENTS
    stack_file.write_text(yaml.safe_dump(config))
    init_stack(workspace, STACK, kubeconfig)
    workspace.run("up", "--yes", "--skip-preview", "--stack", STACK)

    seen = agw_status.wait_conditions(
        f"AgentgatewayPolicy {NS}/{POLICY} on Gateway {GATEWAY}",
        lambda: ancestor_conditions(kube),
        {"Accepted": "True", "Attached": "True"},
    )
    assert seen["Accepted"].reason == "Valid", seen["Accepted"].message
    kid = json.loads(jwks)["keys"][0]["kid"]

    def served_policy(snapshot: Any) -> list[bytes] | None:
        found = [
            value
            for name, (_, value) in snapshot.served(NS, GATEWAY).items()
            if name.startswith("policy/") and POLICY in name
        ]
        return found or None

    policies, waited = admin.wait_for(f"policy {NS}/{POLICY} served", served_policy)
    served = b"".join(policies)
    print(f"\nidentity policy: {len(policies)} xDS resource(s) served after {waited:.1f} s")
    assert issuer.encode() in served
    assert kid.encode() in served  # the inline JWKS reached the data plane's config
    assert b"system:serviceaccount:team-ai:chat" in served  # authorization and rate limit
    assert b"system:serviceaccount:llm-gateway-agw-ident:llm-smoke" in served


def test_destroy_removes_the_policy(workspace: Workspace, kube: Kube) -> None:
    workspace.run("destroy", "--yes", "--skip-preview", "--stack", STACK)
    assert kube.wait_gone("Namespace", NS, timeout=90)
