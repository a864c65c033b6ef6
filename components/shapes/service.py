"""core/v1 Service in front of the proxy: port 80 → container port `http` (8080)."""

from typing import Any

import pulumi

from .deployment import PORT_NAME
from .meta import object_meta, selector

API_VERSION = "v1"
KIND = "Service"
SERVICE_PORT = 80


def service(name: str, namespace: pulumi.Input[str], *, skip_await: bool) -> dict[str, Any]:
    """A ClusterIP Service selecting the proxy pods."""
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": object_meta(name, namespace, component=name, skip_await=skip_await),
        "spec": {
            "type": "ClusterIP",
            "selector": selector(name),
            "ports": [
                {
                    "name": PORT_NAME,
                    "port": SERVICE_PORT,
                    "targetPort": PORT_NAME,
                    "protocol": "TCP",
                }
            ],
        },
    }


def service_base_url(name: str, namespace: str) -> str:
    """In-cluster OpenAI base URL (as the SDK's base_url) of the proxy."""
    return f"http://{name}.{namespace}.svc.cluster.local/v1"
