"""policy/v1 PodDisruptionBudget: voluntary evictions take one proxy pod at a time."""

import pulumi
import pulumi_kubernetes as k8s

from .meta import object_meta, selector


def pod_disruption_budget(
    name: str, namespace: pulumi.Input[str], *, skip_await: bool
) -> k8s.policy.v1.PodDisruptionBudgetArgsDict:
    """maxUnavailable 1 (not minAvailable) so drains never deadlock on small counts."""
    spec: k8s.policy.v1.PodDisruptionBudgetSpecArgsDict = {
        "max_unavailable": 1,
        "selector": {"match_labels": selector(name)},
    }
    return {
        "metadata": object_meta(name, namespace, component=name, skip_await=skip_await),
        "spec": spec,
    }
