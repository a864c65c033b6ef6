"""The validators catch the mistakes that would fail in a cluster, each on its own."""

import copy
from typing import Any

import pytest

from tests.manifests.crd_schema import crds_dir, require_crds
from tests.manifests.validate import findings
from tests.support.pulumi_render import render_stack

CRDS = crds_dir()


@pytest.fixture
def needs_crds() -> None:
    require_crds("negative test of a custom object")


def rendered(kind: str) -> dict[str, Any]:
    return copy.deepcopy(render_stack("staging").one(kind).inputs)


def errors_of(manifest: dict[str, Any]) -> list[str]:
    return findings(manifest, CRDS).errors


@pytest.mark.usefixtures("needs_crds")
@pytest.mark.parametrize("kind", ["AgentgatewayBackend", "Gateway", "HTTPRoute"])
def test_the_rendered_objects_themselves_are_clean(kind: str) -> None:
    # The baseline each negative test mutates: clean, with every rule actually evaluated.
    result = findings(rendered(kind), CRDS)
    assert result.errors == []
    assert result.unevaluable == []


@pytest.mark.usefixtures("needs_crds")
def test_namespace_inside_secret_ref_is_rejected() -> None:
    backend = rendered("AgentgatewayBackend")
    backend["spec"]["policies"]["auth"]["secretRef"]["namespace"] = "other"
    errors = errors_of(backend)
    assert any(
        e.startswith("spec.policies.auth.secretRef:") and "'namespace' was unexpected" in e
        for e in errors
    ), errors


@pytest.mark.usefixtures("needs_crds")
def test_backend_ref_without_group_and_kind_is_rejected() -> None:
    route = rendered("HTTPRoute")
    (ref,) = route["spec"]["rules"][0]["backendRefs"]
    del ref["group"], ref["kind"]
    # Defaults make it a core Service reference, which then needs a port.
    assert errors_of(route) == [
        "spec.rules[0].backendRefs[0]: CEL rule failed: Must have port for Service reference"
    ]


@pytest.mark.usefixtures("needs_crds")
@pytest.mark.parametrize(
    "api_version", ["agentgateway.dev/v1alpha1", "gateway.networking.k8s.io/v1"]
)
def test_an_airoute_kind_is_rejected(api_version: str) -> None:
    route = rendered("HTTPRoute")
    route["apiVersion"], route["kind"] = api_version, "AIRoute"
    errors = errors_of(route)
    assert errors == [f"no CRD serves {api_version} AIRoute under {CRDS}"]


@pytest.mark.usefixtures("needs_crds")
def test_both_ai_and_static_backends_are_rejected() -> None:
    backend = rendered("AgentgatewayBackend")
    backend["spec"]["static"] = {"host": "api.openai.com", "port": 443}
    errors = errors_of(backend)
    assert any(
        e.startswith("spec: CEL rule failed: exactly one of the fields in [ai static")
        for e in errors
    ), errors


@pytest.mark.usefixtures("needs_crds")
def test_host_without_port_is_rejected() -> None:
    backend = rendered("AgentgatewayBackend")
    backend["spec"]["ai"]["provider"]["host"] = "api.groq.com"
    assert (
        "spec.ai.provider: CEL rule failed: both host and port must be set together"
        in errors_of(backend)
    )


def test_an_unknown_field_in_a_core_object_is_rejected() -> None:
    deployment = rendered("Deployment")
    deployment["spec"]["template"]["spec"]["containers"][0]["subpath"] = "apiKey"
    errors = errors_of(deployment)
    assert len(errors) == 1
    assert "'subpath' was unexpected" in errors[0]


def monitoring_object(kind: str, name: str) -> dict[str, Any]:
    result = render_stack("staging", overrides={"monitoring.enabled": True})
    (found,) = [r for r in result.of_kind(kind) if r.object_name == name]
    return copy.deepcopy(found.inputs)


@pytest.mark.usefixtures("needs_crds")
def test_monitoring_objects_are_clean_and_their_mistakes_are_rejected() -> None:
    monitor = monitoring_object("PodMonitor", "llm-gateway-proxy")
    rule = monitoring_object("PrometheusRule", "llm-gateway")
    assert errors_of(monitor) == []
    assert errors_of(rule) == []
    # ServiceMonitor's field name in a PodMonitor, and a rule without its expression.
    monitor["spec"]["endpoints"] = monitor["spec"].pop("podMetricsEndpoints")
    assert "spec: Additional properties are not allowed ('endpoints' was unexpected)" in (
        errors_of(monitor)
    )
    del rule["spec"]["groups"][0]["rules"][0]["expr"]
    assert any("'expr' is a required property" in e for e in errors_of(rule)), errors_of(rule)
