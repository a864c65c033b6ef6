"""monitoring.coreos.com/v1 PodMonitor: how the Prometheus Operator scrapes a plane's pods.

A PodMonitor rather than a ServiceMonitor: the proxy's Service exposes only its API port
(the metrics port must not be reachable through it), and agentgateway's data-plane
Service is the controller's. The monitor selects the pods by the label their Deployment
gives them, in the gateway's namespace only, and names the metrics port; the
NetworkPolicies let the configured scraper in on exactly that port.
"""

from typing import TypedDict

import pulumi

from .meta import CustomObject, labels, object_meta

API_VERSION = "monitoring.coreos.com/v1"
KIND = "PodMonitor"


class _Endpoint(TypedDict):
    path: str
    interval: str


class Endpoint(_Endpoint, total=False):
    port: str  # the container port's name, when it has one
    portNumber: int


class LabelSelector(TypedDict):
    matchLabels: dict[str, str]


class NamespaceSelector(TypedDict):
    matchNames: list[pulumi.Input[str]]


class PodMonitorSpec(TypedDict):
    selector: LabelSelector
    namespaceSelector: NamespaceSelector
    podMetricsEndpoints: list[Endpoint]


def pod_monitor(
    name: str,
    namespace: pulumi.Input[str],
    *,
    component: str,
    pod_labels: dict[str, str],
    port: str | int,
    interval: str,
    extra_labels: dict[str, str],
    skip_await: bool,
) -> CustomObject[PodMonitorSpec]:
    """Scrape `/metrics` on `port` (a port name, or a number for pods whose port has none)."""
    endpoint: Endpoint = {"path": "/metrics", "interval": interval}
    if isinstance(port, str):
        endpoint["port"] = port
    else:
        endpoint["portNumber"] = port
    metadata = object_meta(name, namespace, component=component, skip_await=skip_await)
    metadata["labels"] = {**extra_labels, **labels(component)}
    return {
        "api_version": API_VERSION,
        "kind": KIND,
        "metadata": metadata,
        "spec": {
            "selector": {"matchLabels": pod_labels},
            "namespaceSelector": {"matchNames": [namespace]},
            "podMetricsEndpoints": [endpoint],
        },
    }
