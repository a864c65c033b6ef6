"""The status the agentgateway controller writes on our objects, as the API server holds it.

Gateway API conditions (GatewayClass/Gateway: Accepted, Programmed; HTTPRoute, per parent:
Accepted, ResolvedRefs; listeners: attachedRoutes) and the AgentgatewayBackend's Accepted.
The controller writes them asynchronously, so every check polls until it holds or times out
with what it saw last.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from kubernetes.client.exceptions import ApiException

from tests.e2e.e2e_kube import GW_GROUP, GW_VERSION, Kube

CONTROLLER_NAME = "agentgateway.dev/agentgateway"
GATEWAY_CLASS = "agentgateway"
STATUS_TIMEOUT_S = 30.0

T = TypeVar("T")


@dataclass(frozen=True)
class Condition:
    status: str
    reason: str
    message: str

    @property
    def true(self) -> bool:
        return self.status == "True"


def conditions(status: dict[str, Any] | None) -> dict[str, Condition]:
    """type → Condition of a status block (or of one route parent's entry)."""
    return {
        c["type"]: Condition(c["status"], c.get("reason", ""), c.get("message", ""))
        for c in (status or {}).get("conditions") or []
    }


def gateway_class(kube: Kube, name: str = GATEWAY_CLASS) -> dict[str, Any] | None:
    try:
        obj: dict[str, Any] = kube.custom.get_cluster_custom_object(
            GW_GROUP, GW_VERSION, "gatewayclasses", name
        )
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise
    return obj


def route_parent(route: dict[str, Any], gateway: str) -> dict[str, Condition]:
    """The conditions our controller reported for the route's parent Gateway `gateway`."""
    for parent in (route.get("status") or {}).get("parents") or []:
        if (
            parent.get("controllerName") == CONTROLLER_NAME
            and parent["parentRef"]["name"] == gateway
        ):
            return conditions(parent)
    return {}


def attached_routes(gateway: dict[str, Any], listener: str) -> int | None:
    """status.listeners[listener].attachedRoutes, None before the controller reported it."""
    for entry in (gateway.get("status") or {}).get("listeners") or []:
        if entry.get("name") == listener:
            return int(entry.get("attachedRoutes", 0))
    return None


def eventually(
    what: str, probe: Callable[[], T], ok: Callable[[T], bool], timeout: float = STATUS_TIMEOUT_S
) -> T:
    """Poll probe until ok(value) and return the value; else fail naming what and the last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if ok(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout:.0f}s; last seen: {value!r}")
        time.sleep(0.25)


def wait_conditions(
    what: str,
    read: Callable[[], dict[str, Condition]],
    expected: dict[str, str],
    timeout: float = STATUS_TIMEOUT_S,
) -> dict[str, Condition]:
    """Poll until each condition type in expected has that status (e.g. {"Accepted": "True"})."""

    def holds(seen: dict[str, Condition]) -> bool:
        return all(t in seen and seen[t].status == s for t, s in expected.items())

    return eventually(what, read, holds, timeout)


def object_conditions(kube: Kube, kind: str, name: str, namespace: str) -> dict[str, Condition]:
    obj = kube.get(kind, name, namespace)
    return conditions((obj or {}).get("status"))


def class_conditions(kube: Kube, name: str = GATEWAY_CLASS) -> dict[str, Condition]:
    return conditions((gateway_class(kube, name) or {}).get("status"))


def parent_conditions(kube: Kube, route: str, namespace: str, gateway: str) -> dict[str, Condition]:
    obj = kube.get("HTTPRoute", route, namespace)
    return route_parent(obj, gateway) if obj else {}


def listener_routes(kube: Kube, gateway: str, namespace: str, listener: str) -> int | None:
    obj = kube.get("Gateway", gateway, namespace)
    return attached_routes(obj, listener) if obj else None
