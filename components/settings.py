"""The config model tree: what each `llm-gateway:` key may hold, with its default.

Pure pydantic, no Pulumi: a key that is wrong on its own fails here; checks across keys
and the reading of raw Pulumi config live in `config.py`.
"""

import re
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator

DEFAULT_OPENAI_BASE_URL = "https://api.openai.com/v1"
# In-cluster and loopback destinations never go through the egress proxy.
DEFAULT_NO_PROXY = ("localhost", "127.0.0.1", ".svc", ".cluster.local")

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(
    r"^(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
)
# registry/path[:tag][@sha256:digest], the shape `docker pull` accepts (lowercase path).
_IMAGE_REF = re.compile(
    r"^(?:(?P<registry>[a-zA-Z0-9.-]+(?::[0-9]+)?)/)?"
    r"(?P<path>[a-z0-9]+(?:[._-]+[a-z0-9]+)*(?:/[a-z0-9]+(?:[._-]+[a-z0-9]+)*)*)"
    r"(?::(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}))?"
    r"(?:@(?P<digest>sha256:[a-f0-9]{64}))?$"
)
_DIGEST = re.compile(r"^sha256:[a-f0-9]{64}$")
_QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(m|k|Ki|Mi|Gi|Ti|M|G|T)?$")


def _check_dns_label(value: str) -> str:
    if not _DNS_LABEL.match(value):
        raise ValueError("must be a DNS-1123 label: lowercase letters, digits and '-', ≤ 63 chars")
    return value


def _check_quantity(value: str | None) -> str | None:
    if value is not None and not _QUANTITY.match(value):
        raise ValueError("must be a Kubernetes quantity such as 100m, 0.5, 128Mi or 1Gi")
    return value


class _Strict(BaseModel):
    """Unknown keys are errors: a typo must not silently fall back to a default."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class GatewaySettings(_Strict):
    """The agentgateway Gateway: its name, class, listener port and route path prefix."""

    name: str = "llm-gateway"
    class_name: str = Field(default="agentgateway", alias="className", min_length=1)
    port: int = Field(default=80, ge=1, le=65535)
    path_prefix: str = Field(default="/", alias="pathPrefix")

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        return _check_dns_label(value)

    @field_validator("path_prefix")
    @classmethod
    def _check_path_prefix(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError("must start with '/'")
        if len(value) > 1 and value.endswith("/"):
            raise ValueError("must not end with '/' (except the root prefix '/')")
        if any(ch in value for ch in "?#% \t") or "//" in value:
            raise ValueError("must be a plain URL path without '//', spaces, '%', '?' or '#'")
        return value


class AgentgatewaySettings(_Strict):
    """Whether to declare the agentgateway data plane (needs its controller and CRDs)."""

    enabled: bool = True


class ResourceQuantities(_Strict):
    """CPU and memory for one side of a container's resources."""

    cpu: str | None = None
    memory: str | None = None

    @field_validator("cpu", "memory")
    @classmethod
    def _check_quantities(cls, value: str | None) -> str | None:
        return _check_quantity(value)


class ProxyResources(_Strict):
    """Container requests/limits; small by default, the proxy only streams bytes."""

    requests: ResourceQuantities = ResourceQuantities(cpu="50m", memory="64Mi")
    limits: ResourceQuantities = ResourceQuantities(cpu="500m", memory="256Mi")


class ProxySettings(_Strict):
    """The bundled llm-proxy Deployment; the env-var defaults mirror proxy/settings.py."""

    enabled: bool = True
    image: str = "ghcr.io/llm-gateway/llm-proxy:0.1.0"
    image_digest: str | None = Field(default=None, alias="imageDigest")
    image_pull_policy: str = Field(default="IfNotPresent", alias="imagePullPolicy")
    replicas: int = Field(default=1, ge=0)
    resources: ProxyResources = ProxyResources()
    allowed_models: list[str] = Field(default_factory=list, alias="allowedModels")
    max_in_flight: int = Field(default=256, alias="maxInFlight", ge=1)
    max_body_bytes: int = Field(default=16 * 1024 * 1024, alias="maxBodyBytes", ge=1)
    connect_timeout: float = Field(default=5.0, alias="connectTimeout", gt=0)
    read_timeout: float = Field(default=600.0, alias="readTimeout", gt=0)
    egress_proxy: str | None = Field(default=None, alias="egressProxy")
    no_proxy: list[str] = Field(default_factory=lambda: list(DEFAULT_NO_PROXY), alias="noProxy")

    @field_validator("egress_proxy")
    @classmethod
    def _check_egress_proxy(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http(s) URL such as http://egress.internal:3128")
        if parts.username or parts.password:
            # The Deployment's env is plain text in the cluster and in Pulumi state.
            raise ValueError(
                "must not carry credentials (they would sit in plain text in the Deployment)"
            )
        return value

    @field_validator("no_proxy")
    @classmethod
    def _check_no_proxy(cls, value: list[str]) -> list[str]:
        if any(not entry.strip() or "," in entry or " " in entry for entry in value):
            raise ValueError("entries must be host names, domains (.example.com) or IPs")
        return value

    @field_validator("image")
    @classmethod
    def _check_image(cls, value: str) -> str:
        if not _IMAGE_REF.match(value):
            raise ValueError("is not a well-formed image reference (registry/repo:tag)")
        return value

    @field_validator("image_digest")
    @classmethod
    def _check_digest(cls, value: str | None) -> str | None:
        if value is not None and not _DIGEST.match(value):
            raise ValueError("must be 'sha256:' followed by 64 lowercase hex characters")
        return value

    @field_validator("image_pull_policy")
    @classmethod
    def _check_pull_policy(cls, value: str) -> str:
        if value not in ("Always", "IfNotPresent", "Never"):
            raise ValueError("must be one of Always, IfNotPresent, Never")
        return value

    @field_validator("allowed_models")
    @classmethod
    def _check_models(cls, value: list[str]) -> list[str]:
        if any(not m.strip() or "," in m for m in value):
            raise ValueError("entries must be non-empty model names without commas")
        return value

    @property
    def image_ref(self) -> str:
        """The reference the kubelet pulls: pinned by digest when one is configured."""
        if self.image_digest is None:
            return self.image
        match = _IMAGE_REF.match(self.image)
        assert match is not None  # validated above
        registry = f"{match['registry']}/" if match["registry"] else ""
        return f"{registry}{match['path']}@{self.image_digest}"


class SmokeTestSettings(_Strict):
    """What the `smokeTest` output command sends."""

    model: str = Field(default="gpt-4o-mini", min_length=1)


class GatewayConfig(_Strict):
    """Everything LlmGateway needs except the key (which stays a Pulumi secret)."""

    namespace: str = "llm-gateway"
    create_namespace: bool = Field(default=True, alias="createNamespace")
    secret_name: str = Field(default="openai-api-key", alias="secretName")
    model: str | None = Field(default=None, min_length=1, max_length=256)
    openai_base_url: str = Field(default=DEFAULT_OPENAI_BASE_URL, alias="openaiBaseUrl")
    gateway: GatewaySettings = GatewaySettings()
    agentgateway: AgentgatewaySettings = AgentgatewaySettings()
    proxy: ProxySettings = ProxySettings()
    kill_switch: bool = Field(default=False, alias="killSwitch")
    smoke_test: SmokeTestSettings = Field(default=SmokeTestSettings(), alias="smokeTest")
    kubeconfig: str | None = None
    context: str | None = None
    skip_await: bool = Field(default=False, alias="skipAwait")

    @field_validator("namespace")
    @classmethod
    def _check_namespace(cls, value: str) -> str:
        return _check_dns_label(value)

    @field_validator("secret_name")
    @classmethod
    def _check_secret_name(cls, value: str) -> str:
        if not _DNS_SUBDOMAIN.match(value):
            raise ValueError("must be a DNS-1123 subdomain: lowercase letters, digits, '-', '.'")
        return value

    @field_validator("openai_base_url")
    @classmethod
    def _check_base_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an absolute http(s) URL")
        if parts.path.rstrip("/") == "":
            raise ValueError("must include the API base path, as the OpenAI SDK's base_url does")
        if parts.query or parts.fragment or parts.username or parts.password:
            raise ValueError("must not carry a query, fragment or credentials")
        try:
            _ = parts.port
        except ValueError as exc:
            raise ValueError("has an invalid port") from exc
        return value.rstrip("/")
