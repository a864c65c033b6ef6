"""The e2e API server itself: reachable, and serving the real CRDs the stack relies on."""

from __future__ import annotations

import pytest
from kubernetes import client

from tests.e2e.e2e_kube import Kube

pytestmark = pytest.mark.e2e

KINDS = {
    "agentgatewaybackends.agentgateway.dev": "AgentgatewayBackend",
    "gateways.gateway.networking.k8s.io": "Gateway",
    "httproutes.gateway.networking.k8s.io": "HTTPRoute",
}


def test_crds_are_established(kube: Kube) -> None:
    api = client.ApiextensionsV1Api(kube.api)
    for name, kind in KINDS.items():
        crd = api.read_custom_resource_definition(name)
        assert crd.spec.names.kind == kind
        assert crd.status is not None
        conditions = {c.type: c.status for c in crd.status.conditions or []}
        assert conditions.get("Established") == "True", name


def test_api_server_enforces_crd_schema(kube: Kube) -> None:
    """A Gateway without its required listeners is refused: the schema is really applied."""
    kube.core.create_namespace({"metadata": {"name": "e2e-schema-probe"}})
    try:
        with pytest.raises(client.ApiException) as refused:
            kube.custom.create_namespaced_custom_object(
                "gateway.networking.k8s.io",
                "v1",
                "e2e-schema-probe",
                "gateways",
                {
                    "apiVersion": "gateway.networking.k8s.io/v1",
                    "kind": "Gateway",
                    "metadata": {"name": "bad"},
                    "spec": {"gatewayClassName": "agentgateway"},
                },
            )
        assert refused.value.status == 422
    finally:
        kube.core.delete_namespace("e2e-schema-probe")
