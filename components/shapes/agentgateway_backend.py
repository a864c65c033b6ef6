"""agentgateway.dev/v1alpha1 AgentgatewayBackend: the OpenAI provider plus its key.

Facts from the v1.4.1 CRD: exactly one backend kind (`ai` here); `ai.provider` has
exactly one provider (`openai`); `host`/`port` override the provider's default address
and must be set together; `pathPrefix` replaces the default `/v1` base path (OpenAI and
Anthropic only; requires host); `policies.tls` originates TLS (needed once host is
overridden to an https upstream); `policies.auth.secretRef` has name/key/group/kind and
no namespace (the Secret must sit next to the backend); without `key` agentgateway reads
`Authorization`. `policies.ai.routes` maps path suffixes to request types; without it
every request is parsed as a chat completion.
"""

from dataclasses import dataclass
from typing import TypedDict
from urllib.parse import urlsplit

import pulumi

from .meta import CustomObject, object_meta
from .secret import KEY_FIELD

API_VERSION = "agentgateway.dev/v1alpha1"
KIND = "AgentgatewayBackend"
# The controller translated the backend (its Secret entry found, its provider valid).
ACCEPTED = "condition=Accepted"
# Where agentgateway's `openai` provider goes when host/port/pathPrefix are not set.
OPENAI_URL = "https://api.openai.com/v1"
OPENAI_BASE_PATH = "/v1"

# Suffix (ends-with match) → request type. `*` keeps other OpenAI paths working as-is.
AI_ROUTES = {
    "/v1/chat/completions": "Completions",
    "/v1/embeddings": "Embeddings",
    "/v1/models": "Models",
    "/v1/responses": "Responses",
    "*": "Passthrough",
}


class OpenAIProvider(TypedDict, total=False):
    model: str


class _Provider(TypedDict):
    openai: OpenAIProvider


class Provider(_Provider, total=False):
    host: str
    port: int
    pathPrefix: str


class AIBackend(TypedDict):
    provider: Provider


class SecretRef(TypedDict):
    name: str
    key: str


class Auth(TypedDict):
    secretRef: SecretRef


class AIPolicy(TypedDict):
    routes: dict[str, str]


class BackendTLS(TypedDict):
    sni: str


class _Policies(TypedDict):
    auth: Auth
    ai: AIPolicy


class Policies(_Policies, total=False):
    tls: BackendTLS


class BackendSpec(TypedDict):
    ai: AIBackend
    policies: Policies


@dataclass(frozen=True)
class Upstream:
    """Where an OpenAI-compatible upstream URL points, in the CRD's terms."""

    host: str
    port: int
    base_path: str
    tls: bool

    @classmethod
    def from_url(cls, upstream_url: str) -> "Upstream":
        parts = urlsplit(upstream_url)
        tls = parts.scheme == "https"
        assert parts.hostname is not None  # validated by the config model
        return cls(
            host=parts.hostname,
            port=parts.port or (443 if tls else 80),
            base_path=parts.path.rstrip("/") or OPENAI_BASE_PATH,
            tls=tls,
        )

    @property
    def is_openai_default(self) -> bool:
        return self == Upstream.from_url(OPENAI_URL)


def _provider(upstream: Upstream, model: str | None) -> Provider:
    provider: Provider = {"openai": {"model": model} if model else {}}
    if not upstream.is_openai_default:
        provider["host"] = upstream.host
        provider["port"] = upstream.port
        if upstream.base_path != OPENAI_BASE_PATH:
            provider["pathPrefix"] = upstream.base_path
    return provider


def _policies(upstream: Upstream, secret_name: str) -> Policies:
    policies: Policies = {
        "auth": {"secretRef": {"name": secret_name, "key": KEY_FIELD}},
        "ai": {"routes": dict(AI_ROUTES)},
    }
    if upstream.tls and not upstream.is_openai_default:
        # With host overridden the backend is a plain address; TLS must be asked for.
        policies["tls"] = {"sni": upstream.host}
    return policies


def agentgateway_backend(
    name: str,
    namespace: pulumi.Input[str],
    *,
    secret_name: str,
    upstream_url: str,
    model: str | None,
    skip_await: bool,
) -> CustomObject[BackendSpec]:
    """The backend the HTTPRoute points at; the key is referenced, never copied.

    `pulumi up` waits for it to be Accepted (unless skip_await): a backend the controller
    refuses (e.g. its Secret lacks the key entry) still leaves the route Accepted and
    ResolvedRefs and the Gateway Programmed, so only this condition shows it."""
    upstream = Upstream.from_url(upstream_url)
    return {
        "api_version": API_VERSION,
        "kind": KIND,
        "metadata": object_meta(
            name, namespace, component="agentgateway", skip_await=skip_await, wait_for=ACCEPTED
        ),
        "spec": {
            "ai": {"provider": _provider(upstream, model)},
            "policies": _policies(upstream, secret_name),
        },
    }
