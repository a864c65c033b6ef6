"""ObjectMeta shared by every object: explicit stable names, labels, await annotation."""

from typing import Any

import pulumi

PART_OF = "llm-gateway"
SKIP_AWAIT_ANNOTATION = "pulumi.com/skipAwait"


def selector(component: str) -> dict[str, str]:
    """The label that picks a component's pods (Deployment, Service and PDB agree on it)."""
    return {"app.kubernetes.io/name": component}


def labels(component: str) -> dict[str, str]:
    """Recommended app.kubernetes.io labels, the selector label among them."""
    return {
        **selector(component),
        "app.kubernetes.io/part-of": PART_OF,
        "app.kubernetes.io/managed-by": "pulumi",
    }


def object_meta(
    name: str,
    namespace: pulumi.Input[str] | None,
    *,
    component: str,
    skip_await: bool,
) -> dict[str, Any]:
    """metadata for one object; skip_await only for API servers without controllers."""
    meta: dict[str, Any] = {"name": name, "labels": labels(component)}
    if namespace is not None:
        meta["namespace"] = namespace
    if skip_await:
        meta["annotations"] = {SKIP_AWAIT_ANNOTATION: "true"}
    return meta
