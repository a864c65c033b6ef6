"""core/v1 Namespace."""

import pulumi_kubernetes as k8s

from .meta import object_meta


def namespace(name: str, *, skip_await: bool) -> k8s.core.v1.NamespaceArgsDict:
    """The namespace every other object lives in."""
    return {
        "metadata": object_meta(name, None, component="llm-gateway", skip_await=skip_await),
    }
