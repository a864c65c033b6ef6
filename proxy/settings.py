"""Proxy settings: one typed object built from LLM_PROXY_* env vars and CLI flags.

Flags win over env vars, env vars over defaults. Every field has a default that
works on a laptop except the key file, whose default is the Deployment's mount.
"""

import json
import os
from pathlib import Path
from typing import Annotated, Literal, Self

from pydantic import Field, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from proxy.identity.clients import ClientSpec
from proxy.upstream_url import check_upstream

DEFAULT_UPSTREAM = "https://api.openai.com/v1"
DEFAULT_KEY_FILE = Path("/etc/llm-gateway/secret/apiKey")
# Where every pod finds its ServiceAccount token, the cluster CA and its namespace.
POD_CREDENTIALS_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
# Sized for held streams, from bench/RESULTS.md ("Held streams"): a worker idles at
# ~55 MiB, may buffer up to max_buffered_bytes (64 MiB) of request bodies, and holds
# ~30 KiB per open stream: 2,048 streams add ~60 MiB, ~180 MiB in all, inside the
# Deployment's default 256Mi limit. Past it, a fast 503 + Retry-After.
MAX_IN_FLIGHT = 2048


class Settings(BaseSettings):
    """Everything the proxy needs to run; see the README table for each env var."""

    model_config = SettingsConfigDict(env_prefix="LLM_PROXY_", extra="ignore", frozen=True)

    host: str = Field(
        default="127.0.0.1", description="Listen address (the Deployment sets 0.0.0.0)."
    )
    port: int = Field(
        default=8080, ge=0, le=65535, description="Listen port (0 = pick a free one)."
    )
    upstream: str = Field(
        default=DEFAULT_UPSTREAM, description="OpenAI-compatible base URL incl. /v1."
    )
    key_file: Path = Field(default=DEFAULT_KEY_FILE, description="File holding the provider key.")
    key_source: Literal["file", "api"] = Field(
        default="file",
        description="file: poll key_file only; api: watch the Secret key_secret through the "
        "Kubernetes API (its entry named like key_file), key_file as the fallback.",
    )
    key_secret: str | None = Field(
        default=None, description="key_source=api: the Secret to watch (required then)."
    )
    key_secret_namespace: str | None = Field(
        default=None, description="key_source=api: its namespace (default: the pod's own)."
    )
    kube_api: str | None = Field(
        default=None,
        description="key_source=api: API server URL (default: https://KUBERNETES_SERVICE_HOST"
        ":KUBERNETES_SERVICE_PORT).",
    )
    kube_credentials_dir: Path = Field(
        default=POD_CREDENTIALS_DIR,
        description="key_source=api: directory with the ServiceAccount token, ca.crt, namespace.",
    )
    key_api_grace: float = Field(
        default=30.0,
        ge=0,
        description="key_source=api: serve key_file once the watch has been broken this long, s.",
    )
    allowed_models: Annotated[tuple[str, ...], NoDecode] = Field(
        default=(), description="Comma-separated model allowlist; empty allows every model."
    )
    max_in_flight: int = Field(
        default=MAX_IN_FLIGHT,
        ge=1,
        description="Concurrent /v1 requests of this process before 503 (streams included).",
    )
    max_body_bytes: int = Field(
        default=16 * 1024 * 1024, ge=1, description="Request body cap (413)."
    )
    max_buffered_bytes: int = Field(
        default=64 * 1024 * 1024,
        ge=1,
        description="Request bodies held in memory by all calls together (503 beyond).",
    )
    connect_timeout: float = Field(
        default=5.0, gt=0, description="Upstream connect timeout, s (504)."
    )
    read_timeout: float = Field(
        default=600.0, gt=0, description="Upstream idle-read timeout, s (504)."
    )
    disabled: bool = Field(default=False, description="Kill switch: every /v1 request gets 503.")
    drain_timeout: float = Field(
        default=20.0, ge=0, description="SIGTERM: wait this long for in-flight."
    )
    key_poll_interval: float = Field(default=0.25, gt=0, description="Key file check period, s.")
    body_timeout: float = Field(
        default=60.0, gt=0, description="Whole request body must arrive within this, s (408)."
    )
    min_body_rate: float = Field(
        default=65536.0,
        ge=0,
        description="Request bodies slower than this many bytes/s after 5 s get 408 (0 = off).",
    )
    header_timeout: float = Field(
        default=10.0, gt=0, description="Request headers must arrive within this, s (closed)."
    )
    idle_timeout: float = Field(
        default=60.0,
        gt=0,
        description="Idle keep-alive connections close after this many seconds.",
    )
    workers: int = Field(
        default=1,
        ge=1,
        description="Worker processes sharing the port (1 = a single process, no supervisor).",
    )
    metrics_port: int | None = Field(
        default=None,
        ge=0,
        le=65535,
        description="Serve /metrics on this port only (the API port then answers 404 for it).",
    )
    require_key: bool = Field(
        default=False,
        description="Exit 1 at start, saying why, when the key file holds no usable key.",
    )
    allow_unpoliced_paths: bool = Field(
        default=False,
        description="With an allowlist: still forward files, batches, assistants... (unchecked).",
    )

    identity_mode: Literal["off", "attribute", "require"] = Field(
        default="off",
        description="Caller identity: off, attribute (anonymous allowed) or require (401/403).",
    )
    identity_audience: str = Field(
        default="llm-gateway", min_length=1, description="Audience callers' tokens must carry."
    )
    identity_issuer: str | None = Field(
        default=None,
        description="Token issuer; unset: read from the API server's OIDC discovery document.",
    )
    identity_jwks_url: str | None = Field(
        default=None,
        validate_default=True,
        description="Service-account JWKS URL; unset: the API server's /openid/v1/jwks.",
    )
    identity_token_file: Path | None = Field(
        default=Path("/var/run/secrets/kubernetes.io/serviceaccount/token"),
        description="The proxy's own ServiceAccount token, sent to fetch the JWKS.",
    )
    identity_ca_file: Path | None = Field(
        default=Path("/var/run/secrets/kubernetes.io/serviceaccount/ca.crt"),
        description="CA bundle that signs the API server's certificate.",
    )
    identity_shares: int = Field(
        default=1,
        ge=1,
        description="Replicas sharing each client budget (each worker gets 1/(this x workers)).",
    )
    clients: Annotated[tuple[ClientSpec, ...], NoDecode] = Field(
        default=(),
        description="JSON list of apps: name, namespace, serviceAccount, allowedModels, limits.",
    )

    @field_validator("identity_jwks_url")
    @classmethod
    def _check_jwks_url(cls, value: str | None, info: ValidationInfo) -> str | None:
        """With identity on, a JWKS URL or a pod's env to derive the API server's from."""
        identity_on = info.data.get("identity_mode", "off") != "off"
        if value is None and identity_on and not os.environ.get("KUBERNETES_SERVICE_HOST"):
            raise ValueError(
                "is unset, and so is KUBERNETES_SERVICE_HOST (not in a pod?): set the "
                "service-account JWKS URL"
            )
        if value is not None and not value.startswith(("https://", "http://")):
            raise ValueError("must be an http(s) URL")
        return value

    @field_validator("clients", mode="before")
    @classmethod
    def _parse_clients(cls, value: object) -> object:
        """JSON text (the env var) or a sequence; an empty string is no clients."""
        if isinstance(value, str):
            return tuple(json.loads(value)) if value.strip() else ()
        return value

    @model_validator(mode="after")
    def _api_needs_secret(self) -> Self:
        if self.key_source == "api" and not self.key_secret:
            raise ValueError(
                "key_source=api needs the Secret's name: set LLM_PROXY_KEY_SECRET "
                "(or --key-secret), or use key_source=file"
            )
        return self

    @field_validator("allowed_models", mode="before")
    @classmethod
    def _split_models(cls, value: object) -> object:
        """Accept "a,b", '["a","b"]' or a sequence; drop blanks."""
        if isinstance(value, str):
            text = value.strip()
            items = json.loads(text) if text.startswith("[") else text.split(",")
            return tuple(str(item).strip() for item in items if str(item).strip())
        return value

    @field_validator("upstream")
    @classmethod
    def _check_upstream(cls, value: str) -> str:
        """Require an absolute http(s) URL with a host, no userinfo, query or fragment.

        The message never repeats the value: it may hold a password.
        """
        check_upstream(value)
        return value.rstrip("/")
