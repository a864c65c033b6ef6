"""gateway.networking.k8s.io/v1 HTTPRoute: Gateway → AgentgatewayBackend.

agentgateway has no route kind of its own; its controller reads Gateway API HTTPRoutes. A
backendRef without group/kind means a core Service (and then needs a port), so both
are explicit. A non-root path prefix is stripped with a URLRewrite so the backend sees
`/v1/...`, the paths `policies.ai.routes` and the upstream expect.
"""

from typing import TypedDict

import pulumi

from . import agentgateway_backend
from . import gateway as gateway_shape
from .meta import CustomObject, object_meta

API_VERSION = "gateway.networking.k8s.io/v1"
KIND = "HTTPRoute"


class PathMatch(TypedDict):
    type: str
    value: str


class RouteMatch(TypedDict):
    path: PathMatch


class BackendRef(TypedDict):
    group: str
    kind: str
    name: str


class PathRewrite(TypedDict):
    type: str
    replacePrefixMatch: str


class URLRewrite(TypedDict):
    path: PathRewrite


class RouteFilter(TypedDict):
    type: str
    urlRewrite: URLRewrite


class _Rule(TypedDict):
    matches: list[RouteMatch]
    backendRefs: list[BackendRef]


class Rule(_Rule, total=False):
    filters: list[RouteFilter]


class ParentRef(TypedDict):
    group: str
    kind: str
    name: str
    sectionName: str


class HTTPRouteSpec(TypedDict):
    parentRefs: list[ParentRef]
    rules: list[Rule]


def _rule(backend_name: str, path_prefix: str) -> Rule:
    rule: Rule = {
        "matches": [{"path": {"type": "PathPrefix", "value": path_prefix}}],
        "backendRefs": [
            {
                "group": agentgateway_backend.API_VERSION.split("/")[0],
                "kind": agentgateway_backend.KIND,
                "name": backend_name,
            }
        ],
    }
    if path_prefix != "/":
        rule["filters"] = [
            {
                "type": "URLRewrite",
                "urlRewrite": {"path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": "/"}},
            }
        ]
    return rule


def http_route(
    name: str,
    namespace: pulumi.Input[str],
    *,
    gateway_name: str,
    backend_name: str,
    path_prefix: str,
    skip_await: bool,
) -> CustomObject[HTTPRouteSpec]:
    """The route from the Gateway's HTTP listener to the backend."""
    return {
        "api_version": API_VERSION,
        "kind": KIND,
        "metadata": object_meta(name, namespace, component="agentgateway", skip_await=skip_await),
        "spec": {
            "parentRefs": [
                {
                    "group": gateway_shape.API_VERSION.split("/")[0],
                    "kind": gateway_shape.KIND,
                    "name": gateway_name,
                    "sectionName": gateway_shape.LISTENER_NAME,
                }
            ],
            "rules": [_rule(backend_name, path_prefix)],
        },
    }
