"""AgentgatewayPlane's aliases: each moved object names the URN it had before the plane
was a component (children of LlmGateway, the backend and route inside wrappers).

What an existing stack's `pulumi preview` makes of them is proven on the real engine in
tests/e2e/test_existing_stack_preview.py; here the aliases are read off the registrations.
"""

from typing import Any

import pytest

from tests.support import pulumi_render
from tests.support.identity_config import identity_on
from tests.support.pulumi_render import render_stack

PREFIX = "urn:pulumi:dev::llm-gateway::"
GATEWAY = "llm-gateway:index:LlmGateway"
# The URNs of the dev stack's agentgateway objects before AgentgatewayPlane existed.
FORMER_URNS = {
    "llm-gateway-gateway": (
        f"{PREFIX}{GATEWAY}$kubernetes:gateway.networking.k8s.io/v1:Gateway::llm-gateway-gateway"
    ),
    "llm-gateway-gateway-netpol": (
        f"{PREFIX}{GATEWAY}$kubernetes:networking.k8s.io/v1:NetworkPolicy"
        "::llm-gateway-gateway-netpol"
    ),
    "llm-gateway-backend": (
        f"{PREFIX}{GATEWAY}$llm-gateway:index:OpenAIBackend"
        "$kubernetes:agentgateway.dev/v1alpha1:AgentgatewayBackend::llm-gateway-backend"
    ),
    "llm-gateway-route": (
        f"{PREFIX}{GATEWAY}$llm-gateway:index:AIRoute"
        "$kubernetes:gateway.networking.k8s.io/v1:HTTPRoute::llm-gateway-route"
    ),
    "llm-gateway-identity-policy": (
        f"{PREFIX}{GATEWAY}$kubernetes:agentgateway.dev/v1alpha1:AgentgatewayPolicy"
        "::llm-gateway-identity-policy"
    ),
}


def _moves(request: Any) -> list[Any]:
    """The aliases that move a resource from another parent (the Kubernetes SDK adds its
    own for renamed API versions, under the same parent)."""
    return [alias for alias in request.aliases if alias.spec.parentUrn]


def _former_urn(request: Any, alias: Any) -> str:
    """The URN an alias spec names, as the engine computes it: the old parent's type chain,
    then the type and name (the resource's own where the spec leaves them out)."""
    spec = alias.spec
    parent = spec.parentUrn
    # The engine leaves the root stack out of type chains (the mock monitor's URN for a
    # child of the stack keeps it).
    chain = parent.split("::")[2].removeprefix("pulumi:pulumi:Stack$")
    stack_and_project = parent.rsplit("::", 2)[0]
    return f"{stack_and_project}::{chain}${spec.type or request.type}::{spec.name or request.name}"


@pytest.fixture
def registered(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Every registration of a render, by name (the monitor's requests as the SDK sent them)."""
    seen: dict[str, Any] = {}
    monitor = pulumi_render._ParentRecordingMonitor
    register = monitor.RegisterResource

    def record(self: Any, request: Any) -> Any:
        seen[request.name] = request
        return register(self, request)

    monkeypatch.setattr(monitor, "RegisterResource", record)
    return seen


def test_every_moved_object_is_aliased_to_the_urn_it_had(registered: dict[str, Any]) -> None:
    result = render_stack("dev", overrides=identity_on("require"))
    plane = [r for r in result.resources if r.parent_urn.endswith("AgentgatewayPlane::llm-gateway")]
    assert sorted(r.name for r in plane) == sorted(FORMER_URNS)
    for name, former in FORMER_URNS.items():
        request = registered[name]
        assert [_former_urn(request, a) for a in _moves(request)] == [former]


def test_nothing_else_is_moved(registered: dict[str, Any]) -> None:
    render_stack("dev", overrides=identity_on("require"))
    moved = {name for name, request in registered.items() if _moves(request)}
    assert moved == set(FORMER_URNS)
