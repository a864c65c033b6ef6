"""core/v1 ServiceAccount for the proxy: it needs no Kubernetes API access at all."""

from typing import Any

import pulumi

from .meta import object_meta

API_VERSION = "v1"
KIND = "ServiceAccount"


def service_account(name: str, namespace: pulumi.Input[str], *, skip_await: bool) -> dict[str, Any]:
    """An identity with no token mounted by default."""
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": object_meta(name, namespace, component=name, skip_await=skip_await),
        "automountServiceAccountToken": False,
    }
