"""monitoring.coreos.com/v1 PrometheusRule: the gateway's alerts (components.alert_rules),
which the Prometheus Operator loads into every Prometheus whose ruleSelector matches."""

from typing import Any, TypedDict

import pulumi

from .meta import CustomObject, labels, object_meta

API_VERSION = "monitoring.coreos.com/v1"
KIND = "PrometheusRule"


class PrometheusRuleSpec(TypedDict):
    groups: list[dict[str, Any]]


def prometheus_rule(
    name: str,
    namespace: pulumi.Input[str],
    *,
    groups: list[dict[str, Any]],
    extra_labels: dict[str, str],
    skip_await: bool,
) -> CustomObject[PrometheusRuleSpec]:
    """`groups` as a rules file has them (alert_rules.rule_groups)."""
    metadata = object_meta(name, namespace, component="monitoring", skip_await=skip_await)
    metadata["labels"] = {**extra_labels, **labels("monitoring")}
    return {
        "api_version": API_VERSION,
        "kind": KIND,
        "metadata": metadata,
        "spec": {"groups": groups},
    }
