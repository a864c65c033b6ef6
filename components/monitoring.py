"""Monitoring: the opt-in operations objects (`monitoring.enabled`).

A PodMonitor per enabled data plane (the proxy's `metrics` port, agentgateway's 15020),
the PrometheusRule with the gateway's alerts (components.alert_rules) and the Grafana
dashboard ConfigMap (components.dashboard). Nothing here when monitoring is off; the
NetworkPolicies (declared with each plane) already admit `metricsScraper` on the
metrics ports only.
"""

import pulumi
import pulumi_kubernetes as k8s

from . import alert_rules, dashboard
from .config_model import LlmGatewayConfig
from .custom_resource import declare_custom_resource
from .llm_proxy import PROXY_NAME
from .shapes import dashboard_config_map, deployment, pod_monitor, prometheus_rule
from .shapes import gateway as gateway_shape
from .shapes.meta import selector

COMPONENT_TYPE = "llm-gateway:index:Monitoring"


class Monitoring(pulumi.ComponentResource):
    """PodMonitors, PrometheusRule and dashboard ConfigMap for one gateway."""

    def __init__(
        self,
        name: str,
        *,
        config: LlmGatewayConfig,
        namespace: pulumi.Input[str],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__(COMPONENT_TYPE, name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        cfg, mon = config, config.monitoring
        self.pod_monitors: list[k8s.apiextensions.CustomResource] = []
        planes: list[tuple[str, str, dict[str, str], str | int]] = []
        if cfg.proxy.enabled:
            planes.append(("proxy", PROXY_NAME, selector(PROXY_NAME), deployment.METRICS_PORT_NAME))
        if cfg.agentgateway.enabled:
            planes.append(
                (
                    "agentgateway",
                    "agentgateway",
                    gateway_shape.data_plane_selector(cfg.gateway.name),
                    gateway_shape.METRICS_PORT,
                )
            )
        for suffix, component, pod_labels, port in planes:
            manifest = pod_monitor.pod_monitor(
                f"{mon.name}-{suffix}",
                namespace,
                component=component,
                pod_labels=pod_labels,
                port=port,
                interval=mon.scrape_interval,
                extra_labels=dict(mon.labels),
                skip_await=cfg.skip_await,
            )
            self.pod_monitors.append(
                declare_custom_resource(f"{name}-{suffix}-monitor", manifest, child)
            )
        rule = prometheus_rule.prometheus_rule(
            mon.name,
            namespace,
            groups=alert_rules.rule_groups(cfg.namespace, kill_switch=cfg.kill_switch),
            extra_labels=dict(mon.labels),
            skip_await=cfg.skip_await,
        )
        self.rule = declare_custom_resource(f"{name}-rules", rule, child)
        board = dashboard_config_map.dashboard_config_map(
            f"{mon.name}-dashboard",
            namespace,
            dashboard=dashboard.dashboard(cfg.namespace),
            sidecar_labels=dict(mon.dashboard_label),
            skip_await=cfg.skip_await,
        )
        self.dashboard = k8s.core.v1.ConfigMap(
            f"{name}-dashboard", metadata=board["metadata"], data=board["data"], opts=child
        )
        self.register_outputs({"ruleName": mon.name})
