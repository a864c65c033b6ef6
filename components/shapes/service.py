"""core/v1 Service in front of the proxy: port 80 → container port `http` (8080)."""

import pulumi
import pulumi_kubernetes as k8s

from .deployment import PORT_NAME
from .meta import object_meta, selector

SERVICE_PORT = 80


def service(
    name: str, namespace: pulumi.Input[str], *, skip_await: bool
) -> k8s.core.v1.ServiceArgsDict:
    """A ClusterIP Service selecting the proxy pods."""
    port: k8s.core.v1.ServicePortArgsDict = {
        "name": PORT_NAME,
        "port": SERVICE_PORT,
        "target_port": PORT_NAME,
        "protocol": "TCP",
    }
    spec: k8s.core.v1.ServiceSpecArgsDict = {
        "type": "ClusterIP",
        "selector": selector(name),
        "ports": [port],
    }
    return {
        "metadata": object_meta(name, namespace, component=name, skip_await=skip_await),
        "spec": spec,
    }


def endpoint(name: str, namespace: str) -> str:
    """In-cluster OpenAI base URL (as the SDK's base_url) of the proxy."""
    return f"http://{name}.{namespace}.svc.cluster.local/v1"
