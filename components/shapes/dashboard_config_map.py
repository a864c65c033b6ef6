"""v1 ConfigMap holding the Grafana dashboard JSON, labelled for the Grafana sidecar.

kube-prometheus-stack's Grafana runs a sidecar that loads every ConfigMap carrying its
label (`grafana_dashboard: "1"` by default) as a dashboard; the label is configurable.
"""

import json
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from .meta import labels, object_meta

FILE_NAME = "llm-gateway.json"


def dashboard_config_map(
    name: str,
    namespace: pulumi.Input[str],
    *,
    dashboard: dict[str, Any],
    sidecar_labels: dict[str, str],
    skip_await: bool,
) -> k8s.core.v1.ConfigMapArgsDict:
    metadata = object_meta(name, namespace, component="monitoring", skip_await=skip_await)
    metadata["labels"] = {**sidecar_labels, **labels("monitoring")}
    return {
        "metadata": metadata,
        "data": {FILE_NAME: json.dumps(dashboard, indent=1, sort_keys=True)},
    }
