"""LlmGateway: one Secret, two optional data planes, one kill switch.

Composes the namespace, KeySecret and two data planes built alike, each one component:
AgentgatewayPlane (Gateway, its NetworkPolicy, AgentgatewayBackend, HTTPRoute) and
LlmProxy; then the smoke outputs and, if enabled, monitoring. What the kill switch cuts
comes from kill_switch.py. Usable as a library: give it an LlmGatewayConfig (valid by
construction) and the key; it makes its own secret-mutable provider unless handed one.
"""

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from .agentgateway_plane import AgentgatewayPlane, gateway_identity
from .config_model import LlmGatewayConfig
from .identity import SMOKE_ACCOUNT, proxy_identity
from .key_secret import KeySecret
from .kill_switch import SMOKE_ON_UP_WHILE_ON, SMOKE_TEST_WHILE_ON, KillSwitch
from .llm_proxy import PROXY_NAME, LlmProxy
from .monitoring import Monitoring
from .provider import check_secret_mutable, secret_mutable_provider
from .shapes import namespace as namespace_shape
from .shapes import service as service_shape
from .shapes import service_account
from .smoke_on_up import PlaneUnderTest, declare_smoke_jobs
from .smoke_output import smoke_test_command

COMPONENT_TYPE = "llm-gateway:index:LlmGateway"
KUBERNETES_TYPE = "kubernetes:core/v1:Namespace"  # any Kubernetes type names its package


@dataclass(frozen=True)
class LlmGatewayArgs:
    """What LlmGateway needs. `openai_key` is wrapped as a secret whatever it arrives as.

    `provider`: a Kubernetes provider with enable_secret_mutable=True (see provider.py
    for how that is checked); None takes the one in the component's resource options,
    if any, else makes one from `config.kubeconfig`/`config.context`.
    """

    config: LlmGatewayConfig
    openai_key: pulumi.Input[str]
    provider: k8s.Provider | None = None


class LlmGateway(pulumi.ComponentResource):
    """Keyless LLM access for a cluster: one key Secret, two optional data planes."""

    namespace: pulumi.Output[str]
    secret_name: pulumi.Output[str]
    key_fingerprint: pulumi.Output[str]
    gateway_endpoint: pulumi.Output[str | None]
    proxy_endpoint: pulumi.Output[str | None]
    kill_switch: pulumi.Output[bool]
    smoke_test: pulumi.Output[str]
    smoke_on_up: pulumi.Output[str]

    def __init__(
        self, name: str, args: LlmGatewayArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        cfg = args.config
        switch = KillSwitch(cfg.kill_switch)
        super().__init__(COMPONENT_TYPE, name, None, opts)
        self.kubernetes_provider = self._kubernetes_provider(name, args)
        child = pulumi.ResourceOptions(
            parent=self, providers={"kubernetes": self.kubernetes_provider}
        )

        namespace = self._declare_namespace(name, cfg, child)
        self.key_secret = KeySecret(
            f"{name}-key",
            namespace=namespace,
            secret_name=cfg.secret_name,
            key=args.openai_key,
            skip_await=cfg.skip_await,
            opts=child,
        )
        # Both data planes read the Secret: declare them after it.
        after_secret = pulumi.ResourceOptions.merge(
            child, pulumi.ResourceOptions(depends_on=[self.key_secret])
        )
        gateway_endpoint = self._agentgateway_side(name, cfg, namespace, switch, after_secret)
        proxy_endpoint = self._proxy_side(name, cfg, namespace, switch, after_secret)
        self.monitoring: Monitoring | None = None
        if cfg.monitoring.enabled:
            self.monitoring = Monitoring(
                f"{name}-monitoring", config=cfg, namespace=namespace, opts=child
            )

        self.namespace = pulumi.Output.from_input(namespace)
        self.secret_name = self.key_secret.secret_name
        self.key_fingerprint = self.key_secret.fingerprint
        self.gateway_endpoint = pulumi.Output.from_input(gateway_endpoint)
        self.proxy_endpoint = pulumi.Output.from_input(proxy_endpoint)
        self.kill_switch = pulumi.Output.from_input(cfg.kill_switch)
        self.smoke_test = (
            self.key_fingerprint.apply(
                lambda fingerprint: smoke_test_command(
                    cfg,
                    gateway_endpoint=gateway_endpoint,
                    proxy_endpoint=proxy_endpoint,
                    key_fingerprint=fingerprint,
                    proxy_name=PROXY_NAME,
                )
            )
            if switch.sends_smoke
            else pulumi.Output.from_input(SMOKE_TEST_WHILE_ON)
        )
        self.smoke_account = self._declare_smoke_account(name, cfg, namespace, child)
        self.smoke_jobs, self.smoke_on_up = declare_smoke_jobs(
            name,
            cfg,
            namespace,
            self.key_fingerprint,
            self._planes_under_test(gateway_endpoint, proxy_endpoint),
            child
            if self.smoke_account is None
            else pulumi.ResourceOptions.merge(
                child, pulumi.ResourceOptions(depends_on=[self.smoke_account])
            ),
            withheld=None if switch.sends_smoke else SMOKE_ON_UP_WHILE_ON,
        )
        self.register_outputs(
            {
                "namespace": self.namespace,
                "secretName": self.secret_name,
                "keyFingerprint": self.key_fingerprint,
                "gatewayEndpoint": self.gateway_endpoint,
                "proxyEndpoint": self.proxy_endpoint,
                "killSwitch": self.kill_switch,
                "smokeTest": self.smoke_test,
                "smokeOnUp": self.smoke_on_up,
            }
        )

    def _planes_under_test(
        self, gateway_endpoint: str | None, proxy_endpoint: str | None
    ) -> list[PlaneUnderTest]:
        """Each enabled plane's URL and the resources that make it ready, gateway first."""
        planes = []
        # A component as a dependency stands for all of its children.
        if gateway_endpoint is not None and self.agentgateway is not None:
            planes.append(
                PlaneUnderTest("gateway", gateway_endpoint, [self.agentgateway], reports_key=False)
            )
        if proxy_endpoint is not None and self.proxy is not None:
            planes.append(PlaneUnderTest("proxy", proxy_endpoint, [self.proxy], reports_key=True))
        return planes

    def _kubernetes_provider(self, name: str, args: LlmGatewayArgs) -> pulumi.ProviderResource:
        """The caller's provider if it is known to update Secrets in place, else our own.

        The caller's is `args.provider`, or else a Kubernetes provider from this
        component's resource options (`provider`/`providers`, or inherited from a parent):
        replacing that with an ambient-kubeconfig one would deploy to another cluster.
        """
        given = args.provider or self.get_provider(KUBERNETES_TYPE)
        if given is not None:
            check_secret_mutable(given)
            return given
        cfg = args.config
        return secret_mutable_provider(
            f"{name}-k8s",
            # An inline kubeconfig carries credentials; keep it encrypted in state.
            kubeconfig=pulumi.Output.secret(cfg.kubeconfig) if cfg.kubeconfig else None,
            context=cfg.context,
            opts=pulumi.ResourceOptions(parent=self),
        )

    def _declare_smoke_account(
        self,
        name: str,
        cfg: LlmGatewayConfig,
        namespace: pulumi.Input[str],
        child: pulumi.ResourceOptions,
    ) -> k8s.core.v1.ServiceAccount | None:
        """Identity on: the ServiceAccount the smoke pods call as (client `llm-smoke`)."""
        if cfg.identity.mode == "off":
            return None
        account = service_account.service_account(
            SMOKE_ACCOUNT, namespace, skip_await=cfg.skip_await
        )
        return k8s.core.v1.ServiceAccount(
            f"{name}-smoke-sa",
            metadata=account["metadata"],
            automount_service_account_token=account["automount_service_account_token"],
            opts=child,
        )

    def _declare_namespace(
        self, name: str, cfg: LlmGatewayConfig, child: pulumi.ResourceOptions
    ) -> pulumi.Input[str]:
        """The namespace name; when we create it, an output so children wait for it."""
        self.namespace_resource: k8s.core.v1.Namespace | None = None
        if not cfg.create_namespace:
            return cfg.namespace
        manifest = namespace_shape.namespace(cfg.namespace, skip_await=cfg.skip_await)
        self.namespace_resource = k8s.core.v1.Namespace(
            f"{name}-ns", metadata=manifest["metadata"], opts=child
        )
        return self.namespace_resource.metadata.apply(lambda m: m.name or cfg.namespace)

    def _agentgateway_side(
        self,
        name: str,
        cfg: LlmGatewayConfig,
        namespace: pulumi.Input[str],
        switch: KillSwitch,
        opts: pulumi.ResourceOptions,
    ) -> str | None:
        """AgentgatewayPlane (no HTTPRoute under the kill switch); its URL.

        It takes this component's own name: its children keep the names they had when
        they were declared here, and their aliases point back under this component."""
        self.agentgateway: AgentgatewayPlane | None = None
        if not cfg.agentgateway.enabled:
            return None
        self.agentgateway = AgentgatewayPlane(
            name,
            namespace=namespace,
            namespace_name=cfg.namespace,
            config=cfg.gateway,
            routes=switch.gateway_routes,
            upstream_url=cfg.upstream_url,
            secret_name=cfg.secret_name,
            clients=cfg.allowed_clients,
            scraper=cfg.metrics_scraper,
            model=cfg.model,
            skip_await=cfg.skip_await,
            identity=gateway_identity(cfg),
            formerly_under=self,
            opts=opts,
        )
        return self.agentgateway.endpoint

    def _proxy_side(
        self,
        name: str,
        cfg: LlmGatewayConfig,
        namespace: pulumi.Input[str],
        switch: KillSwitch,
        opts: pulumi.ResourceOptions,
    ) -> str | None:
        """LlmProxy (scaled to zero under the kill switch); its URL."""
        self.proxy: LlmProxy | None = None
        if not cfg.proxy.enabled:
            return None
        self.proxy = LlmProxy(
            f"{name}-proxy",
            namespace=namespace,
            config=cfg.proxy,
            replicas=switch.proxy_replicas(cfg.proxy.replicas),
            upstream_url=cfg.upstream_url,
            secret_name=cfg.secret_name,
            clients=cfg.allowed_clients,
            scraper=cfg.metrics_scraper,
            skip_await=cfg.skip_await,
            identity=proxy_identity(cfg),
            opts=opts,
        )
        return service_shape.endpoint(PROXY_NAME, cfg.namespace)
