"""ObjectMeta shared by every object: explicit stable names, labels, await annotations."""

from typing import Generic, TypedDict, TypeVar

import pulumi
import pulumi_kubernetes as k8s

PART_OF = "llm-gateway"
Spec = TypeVar("Spec")
SKIP_AWAIT_ANNOTATION = "pulumi.com/skipAwait"
# pulumi-kubernetes ≥ 4.18 waits for what this names (kubectl-wait syntax) on create/update.
WAIT_FOR_ANNOTATION = "pulumi.com/waitFor"


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
    name: pulumi.Input[str],
    namespace: pulumi.Input[str] | None,
    *,
    component: str,
    skip_await: bool,
    wait_for: str | None = None,
) -> k8s.meta.v1.ObjectMetaArgsDict:
    """metadata for one object. skip_await only for API servers without controllers; it
    also drops `wait_for` (a readiness condition that nothing would ever set there)."""
    meta: k8s.meta.v1.ObjectMetaArgsDict = {"name": name, "labels": labels(component)}
    if namespace is not None:
        meta["namespace"] = namespace
    if skip_await:
        meta["annotations"] = {SKIP_AWAIT_ANNOTATION: "true"}
    elif wait_for is not None:
        meta["annotations"] = {WAIT_FOR_ANNOTATION: wait_for}
    return meta


class CustomObject(TypedDict, Generic[Spec]):
    """A CRD-kind object: the SDK has no typed dict for it, so each kind's module types its
    spec (camelCase, as the CRD spells it and as CustomResource passes it through)."""

    api_version: str
    kind: str
    metadata: k8s.meta.v1.ObjectMetaArgsDict
    spec: Spec
