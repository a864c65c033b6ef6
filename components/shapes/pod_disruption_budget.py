"""policy/v1 PodDisruptionBudget: voluntary evictions take one proxy pod at a time."""

from typing import Any

import pulumi

from .meta import object_meta, selector

API_VERSION = "policy/v1"
KIND = "PodDisruptionBudget"


def pod_disruption_budget(
    name: str, namespace: pulumi.Input[str], *, skip_await: bool
) -> dict[str, Any]:
    """maxUnavailable 1 (not minAvailable) so drains never deadlock on small counts."""
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": object_meta(name, namespace, component=name, skip_await=skip_await),
        "spec": {
            "maxUnavailable": 1,
            "selector": {"matchLabels": selector(name)},
        },
    }
