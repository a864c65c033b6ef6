"""networking.k8s.io/v1 NetworkPolicy: who may reach the data planes, where the proxy may go.

Keyless means any pod that reaches a data plane spends the key, so ingress is limited to
the configured clients (plus pods labelled as clients in the gateway's own namespace,
where the smoke pods run) and the metrics scraper. The proxy's egress is limited to DNS
and the upstream's port (and the egress proxy's): a NetworkPolicy cannot name hosts, so
ports are the finest cut it allows. Inert without a CNI that enforces NetworkPolicy.
"""

from collections.abc import Sequence
from urllib.parse import urlsplit

import pulumi
import pulumi_kubernetes as k8s

from ..config_model import CLIENT_LABEL, ClientConfig
from .meta import object_meta

DNS_PORT = 53
_SCHEME_PORTS = {"http": 80, "https": 443}

Peer = k8s.networking.v1.NetworkPolicyPeerArgsDict
Port = k8s.networking.v1.NetworkPolicyPortArgsDict
Ingress = k8s.networking.v1.NetworkPolicyIngressRuleArgsDict
Egress = k8s.networking.v1.NetworkPolicyEgressRuleArgsDict


def _peer(client: ClientConfig) -> Peer:
    peer: Peer = {"namespace_selector": {"match_labels": dict(client.namespace_labels)}}
    if client.pod_labels is not None:
        peer["pod_selector"] = {"match_labels": dict(client.pod_labels)}
    return peer


def client_peers(clients: Sequence[ClientConfig]) -> list[Peer]:
    """The configured clients, then labelled pods of the policy's own namespace."""
    own_namespace: Peer = {"pod_selector": {"match_labels": {CLIENT_LABEL: "true"}}}
    return [*(_peer(client) for client in clients), own_namespace]


def _tcp(port: int) -> Port:
    return {"port": port, "protocol": "TCP"}


def url_port(url: str) -> int:
    """The TCP port an http(s) URL connects to."""
    parts = urlsplit(url)
    return parts.port or _SCHEME_PORTS[parts.scheme]


def _ingress(
    clients: Sequence[ClientConfig], port: int, scraper: ClientConfig, metrics_port: int
) -> list[Ingress]:
    """Both planes admit the same callers: clients on the serving port only, the scraper on
    the metrics port only (so it cannot spend the key)."""
    return [
        {"from_": client_peers(clients), "ports": [_tcp(port)]},
        {"from_": [_peer(scraper)], "ports": [_tcp(metrics_port)]},
    ]


def proxy_policy(
    name: str,
    namespace: pulumi.Input[str],
    *,
    pod_labels: dict[str, str],
    port: int,
    metrics_port: int,
    clients: Sequence[ClientConfig],
    scraper: ClientConfig,
    upstream_ports: Sequence[int],
    skip_await: bool,
) -> k8s.networking.v1.NetworkPolicyArgsDict:
    """Ingress to the proxy pods: clients to the API port, the scraper to the metrics port
    only (so it cannot spend the key on /v1); egress only to DNS and `upstream_ports`."""
    dns: Egress = {"ports": [{"port": DNS_PORT, "protocol": "UDP"}, _tcp(DNS_PORT)]}
    upstream: Egress = {"ports": [_tcp(p) for p in sorted(set(upstream_ports))]}
    spec: k8s.networking.v1.NetworkPolicySpecArgsDict = {
        "pod_selector": {"match_labels": pod_labels},
        "policy_types": ["Ingress", "Egress"],
        "ingress": _ingress(clients, port, scraper, metrics_port),
        "egress": [dns, upstream],
    }
    return {
        "metadata": object_meta(name, namespace, component=name, skip_await=skip_await),
        "spec": spec,
    }


def gateway_policy(
    name: str,
    namespace: pulumi.Input[str],
    *,
    pod_labels: dict[str, str],
    listener_port: int,
    metrics_port: int,
    clients: Sequence[ClientConfig],
    scraper: ClientConfig,
    skip_await: bool,
) -> k8s.networking.v1.NetworkPolicyArgsDict:
    """Ingress to the agentgateway data-plane pods: clients to the listener, the scraper
    to the metrics port. Their egress (to the controller's xDS and the upstream) stays open."""
    spec: k8s.networking.v1.NetworkPolicySpecArgsDict = {
        "pod_selector": {"match_labels": pod_labels},
        "policy_types": ["Ingress"],
        "ingress": _ingress(clients, listener_port, scraper, metrics_port),
    }
    return {
        "metadata": object_meta(name, namespace, component="agentgateway", skip_await=skip_await),
        "spec": spec,
    }
