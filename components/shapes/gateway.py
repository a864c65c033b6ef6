"""gateway.networking.k8s.io/v1 Gateway: one plain-HTTP listener for in-cluster clients.

The agentgateway controller provisions a Deployment and a Service named after the
Gateway, in its namespace, exposing the listener ports (container port = listener port);
that Service is what `endpoint` addresses. Its data-plane pods carry
`gateway.networking.k8s.io/gateway-name: <gateway>` (agentgateway v1.4.1,
controller/pkg/wellknown) and serve Prometheus metrics on 15020.
"""

from typing import TypedDict

import pulumi

from .meta import CustomObject, object_meta

API_VERSION = "gateway.networking.k8s.io/v1"
KIND = "Gateway"
LISTENER_NAME = "http"
# The label the controller puts on the data-plane pods it runs for a Gateway.
GATEWAY_NAME_LABEL = "gateway.networking.k8s.io/gateway-name"
METRICS_PORT = 15020
# Gateway API's readiness: the controller has configured the data plane for it.
PROGRAMMED = "condition=Programmed"


class AllowedRoutes(TypedDict):
    namespaces: dict[str, str]


class Listener(TypedDict):
    name: str
    protocol: str
    port: int
    allowedRoutes: AllowedRoutes


class GatewaySpec(TypedDict):
    gatewayClassName: str
    listeners: list[Listener]


def gateway(
    name: str,
    namespace: pulumi.Input[str],
    *,
    class_name: str,
    port: int,
    skip_await: bool,
) -> CustomObject[GatewaySpec]:
    """A Gateway accepting HTTPRoutes from its own namespace only; `pulumi up` waits for
    it to be Programmed (unless skip_await)."""
    return {
        "api_version": API_VERSION,
        "kind": KIND,
        "metadata": object_meta(
            name, namespace, component="agentgateway", skip_await=skip_await, wait_for=PROGRAMMED
        ),
        "spec": {
            "gatewayClassName": class_name,
            "listeners": [
                {
                    "name": LISTENER_NAME,
                    "protocol": "HTTP",
                    "port": port,
                    "allowedRoutes": {"namespaces": {"from": "Same"}},
                }
            ],
        },
    }


def data_plane_selector(name: str) -> dict[str, str]:
    """The label that picks the data-plane pods the controller runs for Gateway `name`."""
    return {GATEWAY_NAME_LABEL: name}


def endpoint(name: str, namespace: str, port: int, path_prefix: str) -> str:
    """In-cluster OpenAI base URL (as the SDK's base_url) of the controller's Service."""
    authority = f"{name}.{namespace}.svc.cluster.local"
    if port != 80:
        authority += f":{port}"
    return f"http://{authority}{path_prefix.rstrip('/')}/v1"
