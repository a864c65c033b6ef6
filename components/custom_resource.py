"""Declaring a CRD-kind object from its shape (see shapes/), the one way we do it."""

from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from .shapes.meta import CustomObject


def declare_custom_resource(
    name: str, manifest: CustomObject[Any], opts: pulumi.ResourceOptions
) -> k8s.apiextensions.CustomResource:
    """A CustomResource whose apiVersion, kind, metadata and spec come from `manifest`."""
    return k8s.apiextensions.CustomResource(
        name,
        api_version=manifest["api_version"],
        kind=manifest["kind"],
        metadata=manifest["metadata"],
        spec=manifest["spec"],
        opts=opts,
    )
