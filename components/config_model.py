"""The config model tree: what each `llm-gateway:` key may hold, its default, an example
and what it means. The one place a key is defined.

Pure pydantic, no Pulumi. A key that is wrong on its own fails in its field validator;
rules across keys are model validators raising `RuleViolations`, so a config built in
code is as valid as one read from a stack. `config.py` reads raw Pulumi config into this
tree and formats the errors; `config_reference.py` derives the examples and the README
table from it.
"""

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from proxy.contract import check_upstream_url

from .shapes.agentgateway_backend import OPENAI_URL

# In-cluster and loopback destinations never go through the egress proxy.
DEFAULT_NO_PROXY = ("localhost", "127.0.0.1", ".svc", ".cluster.local")
# The label a namespace (or a pod in the gateway's own namespace) carries to be let in.
CLIENT_LABEL = "llm-gateway/client"
# Where API servers listen behind the `kubernetes` Service on most clusters (managed: 443,
# kubeadm and most others: 6443); the proxy's NetworkPolicy opens these when it calls the
# API server (keySource api, identity on).
DEFAULT_API_SERVER_PORTS = (443, 6443)
# Ports the agentgateway data plane keeps for itself (metrics, readiness, admin).
AGENTGATEWAY_RESERVED_PORTS = (15000, 15020, 15021)

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
_LABEL_NAME = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)$")


@dataclass(frozen=True)
class RuleViolation:
    """One broken cross-key rule: the key to fix (relative to the model that checks it),
    what is wrong, and optionally another key/value whose setting fixes it."""

    key: str
    message: str
    fix: tuple[str, Any] | None = None


class RuleViolations(ValueError):
    """Raised by a model validator; pydantic keeps it in the error's ctx for config.py."""

    def __init__(self, violations: list[RuleViolation]) -> None:
        self.violations = violations
        super().__init__("; ".join(f"{v.key}: {v.message}" for v in violations))


def _check_dns_label(value: str) -> str:
    if not _DNS_LABEL.match(value):
        raise ValueError("must be a DNS-1123 label: lowercase letters, digits and '-', ≤ 63 chars")
    return value


_SUFFIX_FACTORS = {"m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12}
_SUFFIX_FACTORS |= {"Ki": 2.0**10, "Mi": 2.0**20, "Gi": 2.0**30, "Ti": 2.0**40}


def quantity_value(quantity: str) -> float:
    """A Kubernetes quantity (validated: "500m", "2", "1.5", "64Mi") as a plain number."""
    for suffix in sorted(_SUFFIX_FACTORS, key=len, reverse=True):
        if quantity.endswith(suffix):
            return float(quantity[: -len(suffix)]) * _SUFFIX_FACTORS[suffix]
    return float(quantity)


def _check_quantity(value: str | None) -> str | None:
    if value is not None and not _QUANTITY.match(value):
        raise ValueError("must be a Kubernetes quantity such as 100m, 0.5, 128Mi or 1Gi")
    return value


def _check_labels(value: Mapping[str, str]) -> Mapping[str, str]:
    for key, label in value.items():
        prefix, _, name = key.rpartition("/")
        if (prefix and not _DNS_SUBDOMAIN.match(prefix)) or not _LABEL_NAME.match(name):
            raise ValueError(f"{key!r} is not a Kubernetes label key (prefix/name)")
        if label and not _LABEL_NAME.match(label):
            raise ValueError(f"{label!r} (for {key}) is not a Kubernetes label value")
    return value


def _label_value(value: Any) -> Any:
    """YAML's unquoted `true` is a bool; a label value is the string "true"."""
    return str(value).lower() if isinstance(value, bool) else value


Labels = dict[str, Annotated[str, BeforeValidator(_label_value)]]


class _Strict(BaseModel):
    """Unknown keys are errors: a typo must not silently fall back to a default."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class GatewayConfig(_Strict):
    """The agentgateway Gateway (key `gateway`): name, class, listener port, route prefix."""

    name: str = Field(
        default="llm-gateway",
        description="Gateway name; the agentgateway controller names its Service after it",
        examples=["llm-gateway"],
    )
    class_name: str = Field(
        default="agentgateway",
        alias="className",
        min_length=1,
        description="GatewayClass",
        examples=["agentgateway"],
    )
    port: int = Field(default=80, ge=1, le=65535, description="HTTP listener port", examples=[80])
    path_prefix: str = Field(
        default="/",
        alias="pathPrefix",
        description="route prefix; a non-root prefix is stripped before the backend",
        examples=["/openai"],
    )

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        return _check_dns_label(value)

    @field_validator("port")
    @classmethod
    def _check_port(cls, value: int) -> int:
        if value in AGENTGATEWAY_RESERVED_PORTS:
            raise ValueError(
                f"is reserved by the agentgateway data plane (ports {AGENTGATEWAY_RESERVED_PORTS})"
            )
        return value

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


class AgentgatewayConfig(_Strict):
    """Whether to declare the agentgateway data plane (needs its controller and CRDs)."""

    enabled: bool = Field(
        default=True,
        description="declare Gateway, AgentgatewayBackend and HTTPRoute",
        examples=[True],
    )


class QuantitiesConfig(_Strict):
    """CPU and memory for one side (requests or limits) of the proxy container."""

    cpu: str | None = Field(default=None, description="CPU quantity", examples=["50m"])
    memory: str | None = Field(default=None, description="memory quantity", examples=["64Mi"])

    @field_validator("cpu", "memory")
    @classmethod
    def _check_quantities(cls, value: str | None) -> str | None:
        return _check_quantity(value)


class ResourcesConfig(_Strict):
    """Container requests/limits; small by default, the proxy only streams bytes."""

    requests: QuantitiesConfig = Field(
        default=QuantitiesConfig(cpu="50m", memory="64Mi"),
        description="container requests",
        examples=[{"memory": "64Mi"}],
    )
    limits: QuantitiesConfig = Field(
        default=QuantitiesConfig(cpu="500m", memory="256Mi"),
        description="container limits; limits.cpu in whole cores is also the number of proxy "
        "worker processes (1 to 16; allow ~64Mi of memory per worker)",
        examples=[{"memory": "256Mi"}],
    )

    @model_validator(mode="after")
    def _check_requests_within_limits(self) -> "ResourcesConfig":
        violations = []
        for kind in ("cpu", "memory"):
            request, limit = getattr(self.requests, kind), getattr(self.limits, kind)
            if request and limit and quantity_value(request) > quantity_value(limit):
                violations.append(
                    RuleViolation(
                        f"requests.{kind}",
                        f"{request} is more than limits.{kind} {limit}: Kubernetes refuses a "
                        "pod whose request exceeds its limit (lower the request or raise the "
                        "limit)",
                        fix=(f"proxy.resources.requests.{kind}", limit),
                    )
                )
        if violations:
            raise RuleViolations(violations)
        return self


class ProxyConfig(_Strict):
    """The bundled llm-proxy Deployment (key `proxy`); it runs the image you build."""

    enabled: bool = Field(
        default=True,
        description="declare the llm-proxy Deployment, Service, ServiceAccount (and PDB)",
        examples=[True],
    )
    image: str | None = Field(
        default=None,
        description="proxy image your cluster can pull (no public one is published; "
        "`make image` builds it); required while the proxy is enabled; the smokeTest pods "
        "use it too",
        examples=["registry.example.com/llm-proxy:0.1.0"],
    )
    image_digest: str | None = Field(
        default=None,
        alias="imageDigest",
        description="pin the image by digest (`repo@sha256:…`)",
        examples=["sha256:<64 hex chars from docker push>"],
    )
    image_pull_policy: str = Field(
        default="IfNotPresent",
        alias="imagePullPolicy",
        description="Always, IfNotPresent or Never",
        examples=["IfNotPresent"],
    )
    replicas: int = Field(
        default=1,
        ge=0,
        description="pod count; a PodDisruptionBudget (maxUnavailable 1) when > 1",
        examples=[2],
    )
    resources: ResourcesConfig = Field(
        default=ResourcesConfig(),
        description="container requests and limits",
        examples=[{"limits": {"memory": "256Mi"}}],
    )
    allowed_models: list[str] = Field(
        default_factory=list,
        alias="allowedModels",
        description="model allowlist (403 for others); empty allows every model",
        examples=[["gpt-4o-mini"]],
    )
    allow_unpoliced_paths: bool = Field(
        default=False,
        alias="allowUnpolicedPaths",
        description="with allowedModels set, still forward endpoints whose model the proxy "
        "cannot check (files, batches, assistants, …); refused by default",
        examples=[False],
    )
    max_in_flight: int = Field(
        default=2048,
        alias="maxInFlight",
        ge=1,
        description="concurrent calls (streams included) per proxy worker; beyond: 503 + "
        "Retry-After; 2048 held streams fit the default 256Mi limit (bench/RESULTS.md)",
        examples=[2048],
    )
    max_body_bytes: int = Field(
        default=16 * 1024 * 1024,
        alias="maxBodyBytes",
        ge=1,
        description="request body cap (413)",
        examples=[16777216],
    )
    connect_timeout: float = Field(
        default=5.0,
        alias="connectTimeout",
        gt=0,
        description="upstream connect timeout, seconds (504)",
        examples=[5],
    )
    read_timeout: float = Field(
        default=600.0,
        alias="readTimeout",
        gt=0,
        description="upstream read timeout, seconds (504)",
        examples=[600],
    )
    egress_proxy: str | None = Field(
        default=None,
        alias="egressProxy",
        description="http(s) egress proxy for the upstream, no credentials "
        "(HTTPS_PROXY/HTTP_PROXY in the pods; its port is opened in the NetworkPolicy)",
        examples=["http://egress.internal:3128"],
        json_schema_extra={"sensitive": True},
    )
    extra_egress_ports: list[int] = Field(
        default_factory=list,
        alias="extraEgressPorts",
        description="more TCP ports the proxy pods may connect to, e.g. an in-cluster "
        "upstream's targetPort when its Service maps another port (CNIs match pod ports)",
        examples=[[8080]],
    )
    no_proxy: list[str] = Field(
        default_factory=lambda: list(DEFAULT_NO_PROXY),
        alias="noProxy",
        description="NO_PROXY with egressProxy",
        examples=[[".internal.example.com"]],
    )
    rollout_timeout: int = Field(
        default=300,
        alias="rolloutTimeout",
        ge=30,
        le=3600,
        description="seconds `pulumi up` waits for the proxy pods to be ready before it "
        "fails naming the pods' reason (image pull, crash, OOM); also the Deployment's "
        "progressDeadlineSeconds",
        examples=[300],
    )
    key_source: str = Field(
        default="api",
        alias="keySource",
        description="api: each pod watches the key Secret through the Kubernetes API (a Role "
        "limited to that Secret, the pod's own ServiceAccount token) and serves a rotated key "
        "within seconds, the mounted Secret as its fallback; file: the mount alone, which "
        "the kubelet refreshes at its next sync (about a minute), no API access at all",
        examples=["api"],
    )
    api_server_ports: list[int] = Field(
        default_factory=lambda: list(DEFAULT_API_SERVER_PORTS),
        alias="apiServerPorts",
        description="the Kubernetes API server's TCP ports the proxy pods may connect to, "
        "for the key Secret's watch (keySource api) and the JWKS fetch (identity.mode "
        "attribute or require): its endpoint port behind the kubernetes Service, which is "
        "what a CNI matches (6443 on kubeadm, 443 on most managed clusters)",
        examples=[[443, 6443]],
    )

    @field_validator("key_source")
    @classmethod
    def _check_key_source(cls, value: str) -> str:
        if value not in ("api", "file"):
            raise ValueError("must be 'api' or 'file'")
        return value

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

    @field_validator("extra_egress_ports", "api_server_ports")
    @classmethod
    def _check_ports(cls, value: list[int]) -> list[int]:
        if any(not 1 <= port <= 65535 for port in value):
            raise ValueError("entries must be TCP ports, 1 to 65535")
        return value

    @field_validator("no_proxy")
    @classmethod
    def _check_no_proxy(cls, value: list[str]) -> list[str]:
        if any(not entry.strip() or "," in entry or " " in entry for entry in value):
            raise ValueError("entries must be host names, domains (.example.com) or IPs")
        return value

    @field_validator("image")
    @classmethod
    def _check_image(cls, value: str | None) -> str | None:
        if value is not None and not _IMAGE_REF.match(value):
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
    def image_ref(self) -> str | None:
        """The reference the kubelet pulls: pinned by digest when one is configured."""
        if self.image is None or self.image_digest is None:
            return self.image
        match = _IMAGE_REF.match(self.image)
        assert match is not None  # validated above
        registry = f"{match['registry']}/" if match["registry"] else ""
        return f"{registry}{match['path']}@{self.image_digest}"


class ClientConfig(_Strict):
    """Pods let through the NetworkPolicies: those in namespaces matching `namespaceLabels`
    ({} = every namespace), and of those only the ones matching `podLabels` when set."""

    namespace_labels: Labels = Field(
        alias="namespaceLabels",
        description="labels the client's namespace carries ({} = every namespace)",
        examples=[{CLIENT_LABEL: "true"}],
    )
    pod_labels: Labels | None = Field(
        default=None,
        alias="podLabels",
        description="labels the client pods carry (unset = every pod in those namespaces)",
        examples=[{"app": "chat"}],
    )

    @field_validator("namespace_labels", "pod_labels")
    @classmethod
    def _check_label_maps(cls, value: Labels | None) -> Labels | None:
        if value is not None:
            _check_labels(value)
        return value


_DISCOVERY_PATH = "/.well-known/openid-configuration"
_JWKS_PATH = "/openid/v1/jwks"
# Names the proxy uses itself as `client` metric labels, and the smoke pods' own client.
RESERVED_CLIENT_NAMES = ("anonymous", "other", "llm-smoke")


class AppConfig(_Strict):
    """One app that calls the gateway with its ServiceAccount token (key `clients[]`)."""

    name: str = Field(
        description="the app's name in logs and metrics (`client` label)", examples=["chat"]
    )
    namespace: str = Field(description="the app's namespace", examples=["team-ai"])
    service_account: str = Field(
        alias="serviceAccount", description="the app's ServiceAccount", examples=["chat"]
    )
    allowed_models: list[str] | None = Field(
        default=None,
        alias="allowedModels",
        min_length=1,
        description="models this app may use (403 for others), each also in "
        "proxy.allowedModels when that is set; unset: the proxy's allowlist alone (proxy "
        "plane only: agentgateway's authorization cannot see the request's model)",
        examples=[["gpt-4o-mini"]],
    )
    requests_per_minute: int | None = Field(
        default=None,
        alias="requestsPerMinute",
        ge=1,
        description="requests per minute (429 beyond); unset: unlimited",
        examples=[600],
    )
    tokens_per_minute: int | None = Field(
        default=None,
        alias="tokensPerMinute",
        ge=1,
        description="prompt + completion tokens per minute, from the upstream's usage (429 "
        "beyond); unset: unlimited",
        examples=[200000],
    )
    tokens_per_day: int | None = Field(
        default=None,
        alias="tokensPerDay",
        ge=1,
        description="tokens per UTC day; unset: unlimited (proxy plane only: agentgateway's "
        "local limits stop at hours)",
        examples=[5000000],
    )

    @field_validator("name", "namespace")
    @classmethod
    def _check_names(cls, value: str) -> str:
        return _check_dns_label(value)

    @field_validator("service_account")
    @classmethod
    def _check_service_account(cls, value: str) -> str:
        if not _DNS_SUBDOMAIN.match(value):
            raise ValueError("must be a DNS-1123 subdomain (a ServiceAccount name)")
        return value

    @field_validator("allowed_models")
    @classmethod
    def _check_models(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and any(not m.strip() for m in value):
            raise ValueError("entries must be non-empty model names")
        return value


class IdentityConfig(_Strict):
    """Callers prove who they are with a projected ServiceAccount token (key `identity`)."""

    mode: str = Field(
        default="off",
        description="off: keyless as before; attribute: a valid token is attributed to its "
        "app, no token is served as `anonymous`; require: no valid token → 401, an unlisted "
        "app → 403",
        examples=["require"],
    )
    audience: str = Field(
        default="llm-gateway",
        min_length=1,
        max_length=253,
        description="audience the apps' projected tokens must carry",
        examples=["llm-gateway"],
    )
    issuer: str | None = Field(
        default=None,
        description="the cluster's service-account issuer (`kubectl get --raw "
        "/.well-known/openid-configuration`); required for agentgateway, the proxy reads it "
        "from the API server",
        examples=["https://kubernetes.default.svc.cluster.local"],
    )
    jwks: str | None = Field(
        default=None,
        description="the cluster's service-account JWKS (`kubectl get --raw /openid/v1/jwks`)"
        " for agentgateway, which cannot fetch it from the API server; re-set it when the "
        "cluster rotates its signing key. The proxy fetches it itself",
        examples=[
            '{"keys":[{"kty":"RSA","kid":"…","n":"…","e":"AQAB","use":"sig","alg":"RS256"}]}'
        ],
    )

    @model_validator(mode="before")
    @classmethod
    def _moved_keys(cls, value: Any) -> Any:
        """identity.apiServerPorts became proxy.apiServerPorts (one list for both uses)."""
        if not isinstance(value, dict):
            return value
        moved = [k for k in ("apiServerPorts", "api_server_ports") if k in value]
        if moved:
            raise RuleViolations(
                [
                    RuleViolation(
                        "apiServerPorts",
                        "has moved to proxy.apiServerPorts, the one list of API server ports "
                        "the proxy pods may reach (JWKS fetch and key Secret watch alike); "
                        "set it there and remove this key",
                        fix=("proxy.apiServerPorts", value[moved[0]]),
                    )
                ]
            )
        return value

    @field_validator("mode")
    @classmethod
    def _check_mode(cls, value: str) -> str:
        if value not in ("off", "attribute", "require"):
            raise ValueError("must be one of off, attribute, require")
        return value

    @field_validator("jwks")
    @classmethod
    def _check_jwks(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            keys = json.loads(value).get("keys")
        except (ValueError, AttributeError):
            keys = None
        if not isinstance(keys, list) or not keys:
            raise ValueError("must be a JWKS document: a JSON object with a non-empty `keys` list")
        return value


class SmokeTestConfig(_Strict):
    """What the smoke request sends, and whether `pulumi up` sends it too."""

    model: str = Field(
        default="gpt-4o-mini",
        min_length=1,
        description="model the smoke command asks for (must be allowed by the proxy)",
        examples=["gpt-4o-mini"],
    )
    on_up: bool = Field(
        default=False,
        alias="onUp",
        description="`pulumi up` runs the smoke request in the cluster too (a Job per data "
        "plane, re-run when the key or image changes) and fails with its reason; spends one "
        "real request per such deploy",
        examples=[True],
    )


_DURATION = re.compile(r"^([0-9]+(ms|s|m|h))+$")


class MonitoringConfig(_Strict):
    """Prometheus Operator objects (PodMonitors, PrometheusRule) and a Grafana dashboard
    ConfigMap; off by default, as they need the operator's CRDs in the cluster."""

    enabled: bool = Field(
        default=False,
        description="declare PodMonitors (proxy and agentgateway metrics ports), a "
        "PrometheusRule with the alerts and a Grafana dashboard ConfigMap (needs the "
        "Prometheus Operator CRDs, monitoring.coreos.com/v1)",
        examples=[True],
    )
    name: str = Field(
        default="llm-gateway",
        description="name of the PrometheusRule; the PodMonitors are NAME-proxy and "
        "NAME-agentgateway, the dashboard ConfigMap NAME-dashboard",
        examples=["llm-gateway"],
    )
    labels: Labels = Field(
        default_factory=dict,
        description="extra labels on the PodMonitors and the PrometheusRule, e.g. the one "
        "your Prometheus' podMonitorSelector/ruleSelector picks (kube-prometheus-stack: "
        "release=<its release name>)",
        examples=[{"release": "kube-prometheus-stack"}],
    )
    scrape_interval: str = Field(
        default="30s",
        alias="scrapeInterval",
        description="the PodMonitors' scrape interval (Prometheus duration)",
        examples=["30s"],
    )
    dashboard_label: Labels = Field(
        default_factory=lambda: {"grafana_dashboard": "1"},
        alias="dashboardLabel",
        description="label(s) the Grafana dashboard sidecar watches for (its `label` and "
        "`labelValue`)",
        examples=[{"grafana_dashboard": "1"}],
    )

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        _check_dns_label(value)
        if len(value) > 63 - len("-agentgateway"):
            raise ValueError("must leave room for the '-agentgateway' suffix (≤ 50 chars)")
        return value

    @field_validator("labels", "dashboard_label")
    @classmethod
    def _check_label_maps(cls, value: Labels) -> Labels:
        _check_labels(value)
        return value

    @field_validator("scrape_interval")
    @classmethod
    def _check_interval(cls, value: str) -> str:
        if not _DURATION.match(value):
            raise ValueError("must be a Prometheus duration such as 30s, 1m or 1m30s")
        return value


class LlmGatewayConfig(_Strict):
    """Everything LlmGateway needs except the key (which stays a Pulumi secret)."""

    namespace: str = Field(
        default="llm-gateway", description="namespace for every object", examples=["llm-gateway"]
    )
    create_namespace: bool = Field(
        default=True,
        alias="createNamespace",
        description="create the namespace (false: use an existing one)",
        examples=[False],
    )
    secret_name: str = Field(
        default="openai-api-key",
        alias="secretName",
        description="the key Secret (data key `apiKey`)",
        examples=["openai-api-key"],
    )
    model: str | None = Field(
        default=None,
        min_length=1,
        max_length=256,
        description="agentgateway model override; must be in proxy.allowedModels when both set",
        examples=["gpt-4o-mini"],
    )
    upstream_url: str = Field(
        default=OPENAI_URL,
        alias="openaiBaseUrl",
        description="OpenAI-compatible upstream for both planes (with its API base path)",
        examples=[OPENAI_URL],
        json_schema_extra={"sensitive": True},
    )
    gateway: GatewayConfig = Field(
        default=GatewayConfig(), description="the Gateway", examples=[{"port": 80}]
    )
    agentgateway: AgentgatewayConfig = Field(
        default=AgentgatewayConfig(),
        description="the agentgateway data plane",
        examples=[{"enabled": True}],
    )
    proxy: ProxyConfig = Field(
        default=ProxyConfig(), description="the bundled proxy", examples=[{"enabled": True}]
    )
    allowed_clients: list[ClientConfig] = Field(
        default_factory=lambda: [ClientConfig(namespaceLabels={CLIENT_LABEL: "true"})],
        alias="allowedClients",
        description=f"who may call either plane (NetworkPolicy ingress); pods labelled "
        f"{CLIENT_LABEL}=true in the gateway's own namespace (the smoke pods) always may",
        examples=[[{"namespaceLabels": {"team": "ai"}}]],
    )
    metrics_scraper: ClientConfig = Field(
        default=ClientConfig(
            namespaceLabels={"kubernetes.io/metadata.name": "monitoring"},
            podLabels={"app.kubernetes.io/name": "prometheus"},
        ),
        alias="metricsScraper",
        description="who may scrape metrics (proxy port 9090, agentgateway port 15020)",
        examples=[{"namespaceLabels": {"team": "observability"}}],
    )
    clients: list[AppConfig] = Field(
        default_factory=list,
        description="apps that call with their ServiceAccount token (identity.mode attribute "
        "or require): who they are and their budgets",
        examples=[[{"name": "chat", "namespace": "team-ai", "serviceAccount": "chat"}]],
    )
    identity: IdentityConfig = Field(
        default=IdentityConfig(),
        description="caller identity",
        examples=[{"mode": "require"}],
    )
    monitoring: MonitoringConfig = Field(
        default=MonitoringConfig(),
        description="Prometheus Operator monitors, alerts and a Grafana dashboard",
        examples=[{"enabled": True}],
    )
    kill_switch: bool = Field(
        default=False,
        alias="killSwitch",
        description="true: no HTTPRoute, proxy at 0 replicas",
        examples=[True],
    )
    smoke_test: SmokeTestConfig = Field(
        default=SmokeTestConfig(),
        alias="smokeTest",
        description="the smokeTest output",
        examples=[{"model": "gpt-4o-mini"}],
    )
    kubeconfig: str | None = Field(
        default=None,
        description="provider kubeconfig, path or inline (kept secret in state)",
        examples=["~/.kube/config"],
        json_schema_extra={"sensitive": True},
    )
    context: str | None = Field(
        default=None, description="kubeconfig context", examples=["kind-llm"]
    )
    skip_await: bool = Field(
        default=False,
        alias="skipAwait",
        description="no readiness waits (API servers without kubelet/controllers)",
        examples=[False],
    )

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

    @field_validator("upstream_url")
    @classmethod
    def _check_upstream_url(cls, value: str) -> str:
        """The proxy's own rule (it refuses the same URLs at start), plus a base path."""
        checked = check_upstream_url(value)
        if urlsplit(checked).path.rstrip("/") == "":
            raise ValueError("must include the API base path, as the OpenAI SDK's base_url does")
        return checked

    @model_validator(mode="after")
    def _check_rules_across_keys(self) -> "LlmGatewayConfig":
        violations = [
            *self._plane_violations(),
            *self._smoke_on_up_violations(),
            *self._allowlist_violations(),
            *self._identity_violations(),
        ]
        if violations:
            raise RuleViolations(violations)
        return self

    def _plane_violations(self) -> list[RuleViolation]:
        if not self.agentgateway.enabled and not self.proxy.enabled:
            return [
                RuleViolation(
                    "agentgateway.enabled",
                    "both data planes are disabled (agentgateway.enabled and proxy.enabled "
                    "are false); enable at least one",
                    fix=("proxy.enabled", True),
                )
            ]
        if self.proxy.enabled and self.proxy.image is None:
            return [
                RuleViolation(
                    "proxy.image",
                    "is not set, and no public llm-proxy image is published: build and push "
                    "one (`make image`) and set it, or run everything locally with `make demo`"
                    " (or set proxy.enabled false)",
                )
            ]
        return []

    def _smoke_on_up_violations(self) -> list[RuleViolation]:
        """What smokeTest.onUp needs: the provider awaiting Jobs, and the proxy image."""
        if not self.smoke_test.on_up:
            return []
        needs = []
        if self.skip_await:
            needs.append(
                "the provider to wait for the smoke Jobs, but skipAwait is true; set "
                "skipAwait false (a cluster with a kubelet)"
            )
        if self.proxy.image is None and not self.proxy.enabled:  # else proxy.image says it
            needs.append(
                "proxy.image: the smoke Jobs run the smoke client of the proxy image; set "
                "proxy.image (`make image` builds one)"
            )
        return [
            RuleViolation(
                "smokeTest.onUp", f"needs {need} or smokeTest.onUp false", ("smokeTest.onUp", False)
            )
            for need in needs
        ]

    def _allowlist_violations(self) -> list[RuleViolation]:
        allowed = self.proxy.allowed_models
        if not (self.proxy.enabled and allowed):
            return []
        violations = []
        if self.model is not None and self.model not in allowed:
            violations.append(
                RuleViolation(
                    "model",
                    f"{self.model!r} is not in proxy.allowedModels {allowed}; the proxy would "
                    "refuse the model the gateway is pinned to",
                    fix=("model", allowed[0]),
                )
            )
        if self.smoke_test.model not in allowed:
            violations.append(
                RuleViolation(
                    "smokeTest.model",
                    f"{self.smoke_test.model!r} is not in proxy.allowedModels {allowed}; the "
                    "smoke test through the proxy would get 403",
                    fix=("smokeTest.model", allowed[0]),
                )
            )
        return violations

    def _identity_violations(self) -> list[RuleViolation]:
        """clients and identity.mode belong together; apps are unique and not reserved."""
        mode = self.identity.mode
        violations = []
        if mode == "off" and self.clients:
            violations.append(
                RuleViolation(
                    "clients",
                    "lists apps, but identity.mode is off, so nobody would check who calls; "
                    "set identity.mode attribute (or require)",
                    fix=("identity.mode", "attribute"),
                )
            )
        if mode == "require" and not self.clients:
            violations.append(
                RuleViolation(
                    "identity.mode",
                    "is require, but no `clients` are listed, so every call would be refused; "
                    "list the apps (clients[0].name, .namespace, .serviceAccount) or use "
                    "attribute",
                    fix=("identity.mode", "attribute"),
                )
            )
        if mode != "off" and self.proxy.enabled and not self.proxy.api_server_ports:
            violations.append(
                RuleViolation(
                    "proxy.apiServerPorts",
                    "is empty, but with identity on the proxy fetches the JWKS from the API "
                    "server; list its ports (443 and/or 6443)",
                    fix=("proxy.apiServerPorts", list(DEFAULT_API_SERVER_PORTS)),
                )
            )
        if mode != "off" and self.agentgateway.enabled:
            for key, path in (("issuer", _DISCOVERY_PATH), ("jwks", _JWKS_PATH)):
                if getattr(self.identity, key) is None:
                    violations.append(
                        RuleViolation(
                            f"identity.{key}",
                            "is needed for agentgateway's jwtAuthentication, which cannot read "
                            f"it from the API server; set it from `kubectl get --raw {path}` "
                            "(or agentgateway.enabled false)",
                        )
                    )
        limited = [a for a in self.clients if a.requests_per_minute or a.tokens_per_minute]
        if mode != "off" and self.agentgateway.enabled and len(limited) > 16:
            violations.append(
                RuleViolation(
                    "clients",
                    f"{len(limited)} apps have per-minute limits; agentgateway's policy holds "
                    "at most 16 (rateLimit.conditional); drop some limits or set "
                    "agentgateway.enabled false",
                )
            )
        names: set[str] = set()
        accounts: set[tuple[str, str]] = set()
        for index, app in enumerate(self.clients):
            account = (app.namespace, app.service_account)
            if app.name in RESERVED_CLIENT_NAMES:
                violations.append(
                    RuleViolation(
                        f"clients[{index}].name",
                        f"{app.name!r} is reserved ({', '.join(RESERVED_CLIENT_NAMES)}); "
                        "pick another name",
                    )
                )
            elif app.name in names:
                violations.append(
                    RuleViolation(f"clients[{index}].name", f"{app.name!r} is listed twice")
                )
            if account in accounts:
                violations.append(
                    RuleViolation(
                        f"clients[{index}].serviceAccount",
                        f"{app.namespace}/{app.service_account} is listed twice; one "
                        "ServiceAccount is one app",
                    )
                )
            names.add(app.name)
            accounts.add(account)
        violations += self._app_model_violations()
        return violations

    def _app_model_violations(self) -> list[RuleViolation]:
        """An app's own models must be ones the proxy's allowlist lets through at all."""
        allowed = self.proxy.allowed_models
        violations = []
        for index, app in enumerate(self.clients):
            if app.allowed_models and not self.proxy.enabled:
                violations.append(
                    RuleViolation(
                        f"clients[{index}].allowedModels",
                        "is enforced by the proxy plane only (agentgateway's authorization "
                        "cannot see the request's model), and proxy.enabled is false; set "
                        "proxy.enabled true or drop the app's list",
                        fix=("proxy.enabled", True),
                    )
                )
            outside = [m for m in app.allowed_models or () if allowed and m not in allowed]
            if outside:
                violations.append(
                    RuleViolation(
                        f"clients[{index}].allowedModels",
                        f"{app.name!r} lists {outside}, which proxy.allowedModels {allowed} "
                        "refuses for every caller; drop them from the app's list or add them "
                        "to proxy.allowedModels",
                    )
                )
        return violations
