"""monitoring.* → PodMonitors, PrometheusRule and dashboard ConfigMap: absent
when off, aimed at the ports the NetworkPolicies open to the scraper when on."""

import json
from typing import Any

import pytest

from components.alert_rules import rule_groups
from components.config import ConfigError
from tests.support.pulumi_render import STACKS, Rendered, diff, fake_key, render_stack

MONITORING_KINDS = ("PodMonitor", "PrometheusRule")
SCRAPER = {  # metricsScraper's default
    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
    "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}},
}
ON = {"monitoring.enabled": True}


def monitors(result: Rendered) -> dict[str, dict[str, Any]]:
    return {r.object_name or "": r.inputs for r in result.of_kind("PodMonitor")}


def dashboards(result: Rendered) -> list[dict[str, Any]]:
    return [
        r.inputs
        for r in result.of_kind("ConfigMap")
        if (r.object_name or "").endswith("-dashboard")
    ]


def ingress_ports(result: Rendered, policy_name: str) -> dict[int, Any]:
    """Port → peers the policy admits there."""
    (policy,) = [p for p in result.of_kind("NetworkPolicy") if p.object_name == policy_name]
    return {
        port["port"]: rule["from"]
        for rule in policy.inputs["spec"]["ingress"]
        for port in rule["ports"]
    }


@pytest.mark.parametrize("stack", STACKS)
def test_nothing_for_monitoring_is_declared_by_default(stack: str) -> None:
    result = render_stack(stack)
    for kind in MONITORING_KINDS:
        assert result.of_kind(kind) == []
    assert dashboards(result) == []
    assert result.of_type("llm-gateway:index:Monitoring") == []


def test_enabled_declares_a_monitor_per_plane_a_rule_and_a_dashboard() -> None:
    result = render_stack("prod", overrides=ON)
    assert len(result.of_type("llm-gateway:index:Monitoring")) == 1
    for kind in MONITORING_KINDS:
        for found in result.of_kind(kind):
            assert "llm-gateway:index:Monitoring" in result.ancestors(found)
    proxy, gateway = (
        monitors(result)["llm-gateway-proxy"],
        monitors(result)["llm-gateway-agentgateway"],
    )
    assert proxy["spec"] == {
        "selector": {"matchLabels": {"app.kubernetes.io/name": "llm-proxy"}},
        "namespaceSelector": {"matchNames": ["llm-gateway"]},
        "podMetricsEndpoints": [{"port": "metrics", "path": "/metrics", "interval": "30s"}],
    }
    assert gateway["spec"]["selector"] == {
        "matchLabels": {"gateway.networking.k8s.io/gateway-name": "llm-gateway"}
    }
    assert gateway["spec"]["podMetricsEndpoints"] == [
        {"portNumber": 15020, "path": "/metrics", "interval": "30s"}
    ]
    rule = result.one("PrometheusRule").inputs
    assert rule["metadata"]["name"] == "llm-gateway"
    assert rule["spec"]["groups"] == rule_groups("llm-gateway")
    (board,) = dashboards(result)
    assert board["metadata"]["labels"]["grafana_dashboard"] == "1"
    model = json.loads(board["data"]["llm-gateway.json"])
    exprs = [t["expr"] for panel in model["panels"] for t in panel["targets"]]
    assert any("gen_ai_client_token_usage" in e for e in exprs)
    assert any("gen_ai_server_time_to_first_token_seconds" in e for e in exprs)
    assert model["templating"]["list"][1]["current"]["value"] == "llm-gateway"


def test_the_scraper_is_let_in_on_the_monitored_ports_only() -> None:
    """The monitor's port is the one the NetworkPolicy opens to metricsScraper, and the
    scraper is admitted nowhere else (so it cannot call /v1 and spend the key)."""
    result = render_stack("prod", overrides=ON)
    deployment = result.one("Deployment").inputs
    ports = {
        p["name"]: p["containerPort"]
        for p in deployment["spec"]["template"]["spec"]["containers"][0]["ports"]
    }
    proxy_port = ports[
        monitors(result)["llm-gateway-proxy"]["spec"]["podMetricsEndpoints"][0]["port"]
    ]
    proxy_ingress = ingress_ports(result, "llm-proxy")
    scraper_peer = proxy_ingress[proxy_port]
    assert scraper_peer == [SCRAPER]
    assert [port for port, peers in proxy_ingress.items() if peers == scraper_peer] == [proxy_port]
    gateway_port = monitors(result)["llm-gateway-agentgateway"]["spec"]["podMetricsEndpoints"][0][
        "portNumber"
    ]
    gateway_ingress = ingress_ports(result, "llm-gateway")
    assert gateway_ingress[gateway_port] == scraper_peer
    assert [port for port, peers in gateway_ingress.items() if peers == scraper_peer] == [
        gateway_port
    ]


def test_names_labels_interval_and_dashboard_label_are_configurable() -> None:
    result = render_stack(
        "staging",
        overrides={
            **ON,
            "monitoring.name": "ops",
            "monitoring.labels": {"release": "kube-prometheus-stack"},
            "monitoring.scrapeInterval": "15s",
            "monitoring.dashboardLabel": {"grafana.example/dashboard": "llm"},
        },
    )
    assert set(monitors(result)) == {"ops-proxy", "ops-agentgateway"}
    for found in [*monitors(result).values(), result.one("PrometheusRule").inputs]:
        assert found["metadata"]["labels"]["release"] == "kube-prometheus-stack"
        assert found["metadata"]["namespace"] == "llm-gateway-staging"
    endpoint = monitors(result)["ops-proxy"]["spec"]["podMetricsEndpoints"][0]
    assert endpoint["interval"] == "15s"
    assert result.one("PrometheusRule").inputs["metadata"]["name"] == "ops"
    (board,) = dashboards(result)
    assert board["metadata"]["name"] == "ops-dashboard"
    assert board["metadata"]["labels"]["grafana.example/dashboard"] == "llm"
    assert "grafana_dashboard" not in board["metadata"]["labels"]
    rule_text = json.dumps(result.one("PrometheusRule").inputs["spec"])
    assert 'namespace=\\"llm-gateway-staging\\"' in rule_text


def test_only_enabled_planes_are_monitored() -> None:
    result = render_stack("dev", overrides={**ON, "agentgateway.enabled": False})
    assert set(monitors(result)) == {"llm-gateway-proxy"}


def test_the_kill_switch_adds_its_alert_and_rotation_touches_no_monitoring_object() -> None:
    live = render_stack("prod", overrides=ON)
    killed = render_stack("prod", overrides={**ON, "killSwitch": True})
    alerts = [r["alert"] for r in killed.one("PrometheusRule").inputs["spec"]["groups"][0]["rules"]]
    assert alerts[-1] == "LlmGatewayKillSwitchOn"
    live_alerts = live.one("PrometheusRule").inputs["spec"]["groups"][0]["rules"]
    assert "LlmGatewayKillSwitchOn" not in [r["alert"] for r in live_alerts]
    old = render_stack("prod", key=fake_key("mon-old"), overrides=ON)
    new = render_stack("prod", key=fake_key("mon-new"), overrides=ON)
    assert diff(old, new) == {("kubernetes:core/v1:Secret", "llm-gateway-key"): ["data.apiKey"]}
    for result in (live, killed, old):
        text = json.dumps([r.inputs for r in result.resources if "monitor" in r.name])
        assert "FAKEKEY" not in text


@pytest.mark.parametrize(
    ("overrides", "key", "words"),
    [
        ({"monitoring.scrapeInterval": "30 seconds"}, "monitoring.scrapeInterval", "duration"),
        ({"monitoring.name": "Ops_Team"}, "monitoring.name", "DNS-1123"),
        ({"monitoring.labels": {"a b": "x"}}, "monitoring.labels", "label key"),
        ({"monitoring.enabeld": True}, "monitoring.enabeld", ""),
    ],
)
def test_bad_monitoring_config_fails_before_anything_is_declared(
    overrides: dict[str, Any], key: str, words: str
) -> None:
    result = render_stack("dev", overrides={**ON, **overrides}, expect_error=True)
    assert isinstance(result.error, ConfigError), result.error
    assert result.resources == []
    (problem,) = [p for p in result.error.problems if p.key == key]
    assert words in problem.problem
