"""core/v1 Namespace."""

from typing import Any

from .meta import object_meta

API_VERSION = "v1"
KIND = "Namespace"


def namespace(name: str, *, skip_await: bool) -> dict[str, Any]:
    """The namespace every other object lives in."""
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": object_meta(name, None, component="llm-gateway", skip_await=skip_await),
    }
