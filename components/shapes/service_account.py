"""core/v1 ServiceAccount for the proxy: with keySource api it may read its one Secret (a
Role and RoleBinding grant exactly that); with file it needs no API access at all. No token
is mounted by default either way: the Deployment mounts one into the proxy container alone
when it watches."""

import pulumi
import pulumi_kubernetes as k8s

from .meta import object_meta


def service_account(
    name: str, namespace: pulumi.Input[str], *, skip_await: bool
) -> k8s.core.v1.ServiceAccountArgsDict:
    """An identity with no token mounted by default."""
    return {
        "metadata": object_meta(name, namespace, component=name, skip_await=skip_await),
        "automount_service_account_token": False,
    }
