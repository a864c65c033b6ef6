"""agentgateway.dev/v1alpha1 AgentgatewayPolicy: caller identity on the agentgateway plane.

One traffic policy on the Gateway (fields as the v1.4.1 CRD spells them):
- `jwtAuthentication`: the cluster's service-account issuer, the apps' audience and the
  cluster's JWKS **inline**. The controller can fetch a remote JWKS itself
  (`jwks.remote.backendRef`, controller/pkg/agentgateway/jwks/fetcher.go), but its GET
  carries no credentials, and the API server serves `/openid/v1/jwks` only to
  authenticated ServiceAccounts unless the cluster grants
  `system:service-account-issuer-discovery` to anonymous users; so the program takes the
  JWKS from config (`identity.jwks`), and the stack must be updated when the cluster
  rotates its signing key. Mode `Strict` for `require`, `Optional` for `attribute`.
- `authorization` (`require` only): one Allow rule, the token's `sub` must be one of the
  listed apps' ServiceAccounts (or the smoke pods').
- `rateLimit.conditional`: per app, its requests and tokens per minute as local (per
  data-plane pod) limits, selected by the token's `sub`. Tokens per day have no
  equivalent (units stop at Hours) and are enforced by the proxy plane only.
"""

import json
from collections.abc import Sequence
from typing import Any

import pulumi

from ..config_model import AppConfig
from .gateway import API_VERSION as GATEWAY_API_VERSION
from .gateway import KIND as GATEWAY_KIND
from .meta import CustomObject, object_meta

API_VERSION = "agentgateway.dev/v1alpha1"
KIND = "AgentgatewayPolicy"
MAX_CONDITIONAL = 16  # the CRD's maxItems for rateLimit.conditional


def subject(namespace: str, service_account: str) -> str:
    """The `sub` claim of a ServiceAccount's tokens."""
    return f"system:serviceaccount:{namespace}:{service_account}"


def _cel_string(value: str) -> str:
    return json.dumps(value)  # a JSON string literal is a valid CEL string literal


def _rate_limits(app: AppConfig) -> list[dict[str, Any]]:
    limits: list[dict[str, Any]] = []
    if app.requests_per_minute is not None:
        limits.append({"requests": app.requests_per_minute, "unit": "Minutes"})
    if app.tokens_per_minute is not None:
        limits.append({"tokens": app.tokens_per_minute, "unit": "Minutes"})
    return limits


def identity_policy(
    name: str,
    namespace: pulumi.Input[str],
    *,
    gateway_name: str,
    mode: str,
    audience: str,
    issuer: str,
    jwks: str,
    apps: Sequence[AppConfig],
    smoke_subject: str,
    skip_await: bool,
) -> CustomObject[dict[str, Any]]:
    """The Gateway's identity policy; `mode` is attribute or require."""
    traffic: dict[str, Any] = {
        "jwtAuthentication": {
            "mode": "Strict" if mode == "require" else "Optional",
            "providers": [{"issuer": issuer, "audiences": [audience], "jwks": {"inline": jwks}}],
        }
    }
    if mode == "require":
        subjects = [subject(a.namespace, a.service_account) for a in apps] + [smoke_subject]
        listed = ", ".join(_cel_string(s) for s in subjects)
        traffic["authorization"] = {
            "action": "Allow",
            "policy": {"matchExpressions": [f"jwt.sub in [{listed}]"]},
        }
    conditional = [
        {
            "condition": f"jwt.sub == {_cel_string(subject(a.namespace, a.service_account))}",
            "policy": {"local": limits},
        }
        for a in apps
        if (limits := _rate_limits(a))
    ]
    if conditional:
        traffic["rateLimit"] = {"conditional": conditional}
    return {
        "api_version": API_VERSION,
        "kind": KIND,
        "metadata": object_meta(name, namespace, component="agentgateway", skip_await=skip_await),
        "spec": {
            "targetRefs": [
                {
                    "group": GATEWAY_API_VERSION.split("/")[0],
                    "kind": GATEWAY_KIND,
                    "name": gateway_name,
                }
            ],
            "traffic": traffic,
        },
    }
