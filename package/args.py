"""GENERATED from components/config_model.py (`python -m package.codegen`); do not edit.

The component package's inputs: one TypedDict per config model, keys in snake_case of
the config keys (the inferred schema camelCases them back). Values are plain (they decide
which resources exist), except the key, which may be any input and is kept secret.
"""

from typing import Required, TypedDict

import pulumi


class Gateway(TypedDict, total=False):
    """The agentgateway Gateway (key `gateway`): name, class, listener port, route prefix."""

    name: str
    """Gateway name; the agentgateway controller names its Service after it (default "llm-gateway")"""

    class_name: str
    """GatewayClass (default "agentgateway")"""

    port: int
    """HTTP listener port (default 80)"""

    path_prefix: str
    """route prefix; a non-root prefix is stripped before the backend (default "/")"""


class Agentgateway(TypedDict, total=False):
    """Whether to declare the agentgateway data plane (needs its controller and CRDs)."""

    enabled: bool
    """declare Gateway, AgentgatewayBackend and HTTPRoute (default true)"""


class Quantities(TypedDict, total=False):
    """CPU and memory for one side (requests or limits) of the proxy container."""

    cpu: str
    """CPU quantity"""

    memory: str
    """memory quantity"""


class Resources(TypedDict, total=False):
    """Container requests/limits; small by default, the proxy only streams bytes."""

    requests: Quantities
    """container requests (default {"cpu": "50m", "memory": "64Mi"})"""

    limits: Quantities
    """container limits; limits.cpu in whole cores is also the number of proxy worker processes (1 to 16; allow ~64Mi of memory per worker) (default {"cpu": "500m", "memory": "256Mi"})"""


class Proxy(TypedDict, total=False):
    """The bundled llm-proxy Deployment (key `proxy`); it runs the image you build."""

    enabled: bool
    """declare the llm-proxy Deployment, Service, ServiceAccount (and PDB) (default true)"""

    image: str
    """proxy image your cluster can pull (no public one is published; `make image` builds it); required while the proxy is enabled; the smokeTest pods use it too"""

    image_digest: str
    """pin the image by digest (`repo@sha256:…`)"""

    image_pull_policy: str
    """Always, IfNotPresent or Never (default "IfNotPresent")"""

    replicas: int
    """pod count; a PodDisruptionBudget (maxUnavailable 1) when > 1 (default 1)"""

    resources: Resources
    """container requests and limits"""

    allowed_models: list[str]
    """model allowlist (403 for others); empty allows every model (default [])"""

    allow_unpoliced_paths: bool
    """with allowedModels set, still forward endpoints whose model the proxy cannot check (files, batches, assistants, …); refused by default (default false)"""

    max_in_flight: int
    """concurrent calls (streams included) per proxy worker; beyond: 503 + Retry-After; 2048 held streams fit the default 256Mi limit (bench/RESULTS.md) (default 2048)"""

    max_body_bytes: int
    """request body cap (413) (default 16777216)"""

    connect_timeout: float
    """upstream connect timeout, seconds (504) (default 5.0)"""

    read_timeout: float
    """upstream read timeout, seconds (504) (default 600.0)"""

    egress_proxy: str
    """http(s) egress proxy for the upstream, no credentials (HTTPS_PROXY/HTTP_PROXY in the pods; its port is opened in the NetworkPolicy)"""

    extra_egress_ports: list[int]
    """more TCP ports the proxy pods may connect to, e.g. an in-cluster upstream's targetPort when its Service maps another port (CNIs match pod ports) (default [])"""

    no_proxy: list[str]
    """NO_PROXY with egressProxy (default ["localhost", "127.0.0.1", ".svc", ".cluster.local"])"""

    rollout_timeout: int
    """seconds `pulumi up` waits for the proxy pods to be ready before it fails naming the pods' reason (image pull, crash, OOM); also the Deployment's progressDeadlineSeconds (default 300)"""

    key_source: str
    """api: each pod watches the key Secret through the Kubernetes API (a Role limited to that Secret, the pod's own ServiceAccount token) and serves a rotated key within seconds, the mounted Secret as its fallback; file: the mount alone, which the kubelet refreshes at its next sync (about a minute), no API access at all (default "api")"""

    api_server_ports: list[int]
    """the Kubernetes API server's TCP ports the proxy pods may connect to, for the key Secret's watch (keySource api) and the JWKS fetch (identity.mode attribute or require): its endpoint port behind the kubernetes Service, which is what a CNI matches (6443 on kubeadm, 443 on most managed clusters) (default [443, 6443])"""


class Client(TypedDict, total=False):
    """Pods let through the NetworkPolicies: those in namespaces matching `namespaceLabels` ({} = every namespace), and of those only the ones matching `podLabels` when set."""

    namespace_labels: Required[dict[str, str]]
    """labels the client's namespace carries ({} = every namespace)"""

    pod_labels: dict[str, str]
    """labels the client pods carry (unset = every pod in those namespaces)"""


class App(TypedDict, total=False):
    """One app that calls the gateway with its ServiceAccount token (key `clients[]`)."""

    name: Required[str]
    """the app's name in logs and metrics (`client` label)"""

    namespace: Required[str]
    """the app's namespace"""

    service_account: Required[str]
    """the app's ServiceAccount"""

    allowed_models: list[str]
    """models this app may use (403 for others), each also in proxy.allowedModels when that is set; unset: the proxy's allowlist alone (proxy plane only: agentgateway's authorization cannot see the request's model)"""

    requests_per_minute: int
    """requests per minute (429 beyond); unset: unlimited"""

    tokens_per_minute: int
    """prompt + completion tokens per minute, from the upstream's usage (429 beyond); unset: unlimited"""

    tokens_per_day: int
    """tokens per UTC day; unset: unlimited (proxy plane only: agentgateway's local limits stop at hours)"""


class Identity(TypedDict, total=False):
    """Callers prove who they are with a projected ServiceAccount token (key `identity`)."""

    mode: str
    """off: keyless as before; attribute: a valid token is attributed to its app, no token is served as `anonymous`; require: no valid token → 401, an unlisted app → 403 (default "off")"""

    audience: str
    """audience the apps' projected tokens must carry (default "llm-gateway")"""

    issuer: str
    """the cluster's service-account issuer (`kubectl get --raw /.well-known/openid-configuration`); required for agentgateway, the proxy reads it from the API server"""

    jwks: str
    """the cluster's service-account JWKS (`kubectl get --raw /openid/v1/jwks`) for agentgateway, which cannot fetch it from the API server; re-set it when the cluster rotates its signing key. The proxy fetches it itself"""


class Monitoring(TypedDict, total=False):
    """Prometheus Operator objects (PodMonitors, PrometheusRule) and a Grafana dashboard ConfigMap; off by default, as they need the operator's CRDs in the cluster."""

    enabled: bool
    """declare PodMonitors (proxy and agentgateway metrics ports), a PrometheusRule with the alerts and a Grafana dashboard ConfigMap (needs the Prometheus Operator CRDs, monitoring.coreos.com/v1) (default false)"""

    name: str
    """name of the PrometheusRule; the PodMonitors are NAME-proxy and NAME-agentgateway, the dashboard ConfigMap NAME-dashboard (default "llm-gateway")"""

    labels: dict[str, str]
    """extra labels on the PodMonitors and the PrometheusRule, e.g. the one your Prometheus' podMonitorSelector/ruleSelector picks (kube-prometheus-stack: release=<its release name>) (default {})"""

    scrape_interval: str
    """the PodMonitors' scrape interval (Prometheus duration) (default "30s")"""

    dashboard_label: dict[str, str]
    """label(s) the Grafana dashboard sidecar watches for (its `label` and `labelValue`) (default {"grafana_dashboard": "1"})"""


class SmokeTest(TypedDict, total=False):
    """What the smoke request sends, and whether `pulumi up` sends it too."""

    model: str
    """model the smoke command asks for (must be allowed by the proxy) (default "gpt-4o-mini")"""

    on_up: bool
    """`pulumi up` runs the smoke request in the cluster too (a Job per data plane, re-run when the key or image changes) and fails with its reason; spends one real request per such deploy (default false)"""


class LlmGatewayArgs(TypedDict, total=False):
    """Everything LlmGateway needs except the key (which stays a Pulumi secret)."""

    openai_key: Required[pulumi.Input[str]]
    """the OpenAI API key; pass it as a secret (it is stored encrypted and never appears in outputs); only its fingerprint is public"""

    namespace: str
    """namespace for every object (default "llm-gateway")"""

    create_namespace: bool
    """create the namespace (false: use an existing one) (default true)"""

    secret_name: str
    """the key Secret (data key `apiKey`) (default "openai-api-key")"""

    model: str
    """agentgateway model override; must be in proxy.allowedModels when both set"""

    openai_base_url: str
    """OpenAI-compatible upstream for both planes (with its API base path) (default "https://api.openai.com/v1")"""

    gateway: Gateway
    """the Gateway"""

    agentgateway: Agentgateway
    """the agentgateway data plane"""

    proxy: Proxy
    """the bundled proxy"""

    allowed_clients: list[Client]
    """who may call either plane (NetworkPolicy ingress); pods labelled llm-gateway/client=true in the gateway's own namespace (the smoke pods) always may (default [{"namespaceLabels": {"llm-gateway/client": "true"}}])"""

    metrics_scraper: Client
    """who may scrape metrics (proxy port 9090, agentgateway port 15020) (default {"namespaceLabels": {"kubernetes.io/metadata.name": "monitoring"}, "podLabels": {"app.kubernetes.io/name": "prometheus"}})"""

    clients: list[App]
    """apps that call with their ServiceAccount token (identity.mode attribute or require): who they are and their budgets (default [])"""

    identity: Identity
    """caller identity"""

    monitoring: Monitoring
    """Prometheus Operator monitors, alerts and a Grafana dashboard"""

    kill_switch: bool
    """true: no HTTPRoute, proxy at 0 replicas (default false)"""

    smoke_test: SmokeTest
    """the smokeTest output"""

    kubeconfig: str
    """provider kubeconfig, path or inline (kept secret in state)"""

    context: str
    """kubeconfig context"""

    skip_await: bool
    """no readiness waits (API servers without kubelet/controllers) (default false)"""
