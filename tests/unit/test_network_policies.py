"""allowedClients/metricsScraper → NetworkPolicies in front of both data planes."""

from typing import Any

import pytest

from tests.support.pulumi_render import STACKS, Rendered, fake_key, render_stack

CLIENT_LABEL = {"llm-gateway/client": "true"}
OWN_NAMESPACE_CLIENTS = {"podSelector": {"matchLabels": CLIENT_LABEL}}
SCRAPER = {
    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
    "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}},
}
DNS = {"ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]}


def policy(result: Rendered, name: str) -> dict[str, Any]:
    (found,) = [p for p in result.of_kind("NetworkPolicy") if p.object_name == name]
    spec: dict[str, Any] = found.inputs["spec"]
    return spec


@pytest.mark.parametrize("stack", STACKS)
def test_by_default_only_labelled_namespaces_and_the_scraper_reach_the_proxy(stack: str) -> None:
    spec = policy(render_stack(stack), "llm-proxy")
    assert spec["podSelector"] == {"matchLabels": {"app.kubernetes.io/name": "llm-proxy"}}
    assert spec["policyTypes"] == ["Ingress", "Egress"]
    # The scraper reaches the metrics port alone: it cannot call /v1 and spend the key.
    assert spec["ingress"] == [
        {
            "from": [{"namespaceSelector": {"matchLabels": CLIENT_LABEL}}, OWN_NAMESPACE_CLIENTS],
            "ports": [{"port": 8080, "protocol": "TCP"}],
        },
        {"from": [SCRAPER], "ports": [{"port": 9090, "protocol": "TCP"}]},
    ]


@pytest.mark.parametrize("stack", STACKS)
def test_proxy_egress_is_dns_the_upstream_and_the_api_server_ports_only(stack: str) -> None:
    spec = policy(render_stack(stack), "llm-proxy")
    # 443: the upstream (and a managed API server); 6443: the API server (keySource api).
    ports = [{"port": 443, "protocol": "TCP"}, {"port": 6443, "protocol": "TCP"}]
    assert spec["egress"] == [DNS, {"ports": ports}]


def test_key_source_file_opens_no_api_server_port() -> None:
    result = render_stack("dev", overrides={"proxy.keySource": "file"})
    assert policy(result, "llm-proxy")["egress"][1] == {"ports": [{"port": 443, "protocol": "TCP"}]}


def test_proxy_egress_follows_the_upstream_and_egress_proxy_ports() -> None:
    result = render_stack(
        "dev",
        overrides={
            "openaiBaseUrl": "http://vllm.models.svc.cluster.local:8000/v1",
            "proxy.egressProxy": "http://egress.internal:3128",
            "proxy.apiServerPorts": [6443],
        },
    )
    assert policy(result, "llm-proxy")["egress"][1] == {
        "ports": [
            {"port": 3128, "protocol": "TCP"},
            {"port": 6443, "protocol": "TCP"},
            {"port": 8000, "protocol": "TCP"},
        ]
    }


def test_extra_egress_ports_are_added_for_in_cluster_upstreams() -> None:
    result = render_stack(
        "dev",
        overrides={
            "openaiBaseUrl": "http://vllm.models.svc.cluster.local/v1",
            "proxy.extraEgressPorts": [8000],
            "proxy.keySource": "file",
        },
    )
    assert policy(result, "llm-proxy")["egress"][1] == {
        "ports": [{"port": 80, "protocol": "TCP"}, {"port": 8000, "protocol": "TCP"}]
    }


def test_gateway_data_plane_pods_admit_clients_on_the_listener_and_the_scraper_on_metrics() -> None:
    result = render_stack("staging", overrides={"gateway.port": 8080})
    spec = policy(result, "llm-gateway")
    # The label agentgateway v1.4.1's deployer puts on the pods it runs for a Gateway.
    assert spec["podSelector"] == {
        "matchLabels": {"gateway.networking.k8s.io/gateway-name": "llm-gateway"}
    }
    assert spec["policyTypes"] == ["Ingress"]
    assert spec["ingress"] == [
        {
            "from": [{"namespaceSelector": {"matchLabels": CLIENT_LABEL}}, OWN_NAMESPACE_CLIENTS],
            "ports": [{"port": 8080, "protocol": "TCP"}],
        },
        {"from": [SCRAPER], "ports": [{"port": 15020, "protocol": "TCP"}]},
    ]


def test_allowed_clients_become_namespace_and_pod_selectors_on_both_planes() -> None:
    clients = [
        {"namespaceLabels": {"team": "ai"}},
        {"namespaceLabels": {"kubernetes.io/metadata.name": "chat"}, "podLabels": {"app": "bot"}},
    ]
    result = render_stack("dev", overrides={"allowedClients": clients})
    expected = [
        {"namespaceSelector": {"matchLabels": {"team": "ai"}}},
        {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "chat"}},
            "podSelector": {"matchLabels": {"app": "bot"}},
        },
        OWN_NAMESPACE_CLIENTS,
    ]
    assert policy(result, "llm-gateway")["ingress"][0]["from"] == expected
    assert policy(result, "llm-proxy")["ingress"][0]["from"] == expected


def test_no_allowed_clients_leaves_only_the_gateways_own_labelled_pods() -> None:
    result = render_stack("dev", overrides={"allowedClients": []})
    assert policy(result, "llm-gateway")["ingress"][0]["from"] == [OWN_NAMESPACE_CLIENTS]


def test_the_smoke_pods_carry_the_client_label() -> None:
    runs = [
        line for line in render_stack("dev").outputs["smokeTest"].splitlines() if " run " in line
    ]
    assert len(runs) == 2
    for line in runs:
        assert " --labels=llm-gateway/client=true " in line


def test_a_yaml_boolean_label_value_becomes_the_string_kubernetes_needs() -> None:
    result = render_stack("dev", overrides={"allowedClients": [{"namespaceLabels": {"ai": True}}]})
    assert policy(result, "llm-proxy")["ingress"][0]["from"][0] == {
        "namespaceSelector": {"matchLabels": {"ai": "true"}}
    }


def test_the_kill_switch_and_rotation_leave_the_policies_alone() -> None:
    live = render_stack("prod")
    killed = render_stack("prod", overrides={"killSwitch": True})
    rotated = render_stack("prod", key=fake_key("rotated"))
    secret = [r for r in live.of_kind("Secret")]
    assert secret  # the render has a key Secret, and the rotation changes what it holds:
    assert [r.inputs for r in rotated.of_kind("Secret")] != [r.inputs for r in secret]
    for changed in (killed, rotated):
        for name in ("llm-proxy", "llm-gateway"):
            assert policy(changed, name) == policy(live, name)


def test_the_proxy_pods_wait_for_their_policy() -> None:
    # The Deployment depends on the policy, so no proxy pod ever runs unfenced.
    result = render_stack("dev")
    (proxy_policy,) = [p for p in result.of_kind("NetworkPolicy") if p.object_name == "llm-proxy"]
    assert proxy_policy.urn in result.one("Deployment").dependencies
