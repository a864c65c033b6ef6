"""Declaring a CRD-kind object from its shape dict (see shapes/), the one way we do it."""

from typing import Any

import pulumi
import pulumi_kubernetes as k8s


def declare_custom_resource(
    name: str, manifest: dict[str, Any], opts: pulumi.ResourceOptions
) -> k8s.apiextensions.CustomResource:
    """A CustomResource whose apiVersion, kind, metadata and spec come from `manifest`."""
    return k8s.apiextensions.CustomResource(
        name,
        api_version=manifest["apiVersion"],
        kind=manifest["kind"],
        metadata=manifest["metadata"],
        spec=manifest["spec"],
        opts=opts,
    )
