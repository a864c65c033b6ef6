"""gateway.networking.k8s.io/v1 Gateway: one plain-HTTP listener for in-cluster clients.

The agentgateway controller provisions a Deployment and a Service named after the
Gateway, in its namespace, exposing the listener ports; that Service is what
`service_base_url` addresses.
"""

from typing import Any

import pulumi

from .meta import object_meta

API_VERSION = "gateway.networking.k8s.io/v1"
KIND = "Gateway"
LISTENER_NAME = "http"


def gateway(
    name: str,
    namespace: pulumi.Input[str],
    *,
    class_name: str,
    port: int,
    skip_await: bool,
) -> dict[str, Any]:
    """A Gateway accepting HTTPRoutes from its own namespace only."""
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": object_meta(name, namespace, component="agentgateway", skip_await=skip_await),
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


def service_base_url(name: str, namespace: str, port: int, path_prefix: str) -> str:
    """In-cluster OpenAI base URL (as the SDK's base_url) of the controller's Service."""
    authority = f"{name}.{namespace}.svc.cluster.local"
    if port != 80:
        authority += f":{port}"
    return f"http://{authority}{path_prefix.rstrip('/')}/v1"
