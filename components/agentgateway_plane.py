"""AgentgatewayPlane: the agentgateway side as one component, built like LlmProxy.

Gateway + the NetworkPolicy that limits who reaches its data-plane pods + the
AgentgatewayBackend that injects the key + the HTTPRoute that joins them (none while
the plane does not route, i.e. under the kill switch) + with caller identity on, the
Gateway's AgentgatewayPolicy. agentgateway's controller makes the data plane itself.

Its objects used to be declared straight under LlmGateway (the backend and the route
each inside a one-resource wrapper component). `formerly_under` names that parent, and
every child carries an alias to where it lived, so an existing stack keeps each object:
`pulumi up` moves them in state, with nothing replaced, created or deleted in the cluster.
"""

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from .config_model import AppConfig, ClientConfig, GatewayConfig, LlmGatewayConfig
from .custom_resource import declare_custom_resource
from .identity import SMOKE_ACCOUNT
from .shapes import agentgateway_backend, agentgateway_policy, http_route, network_policy
from .shapes import gateway as gateway_shape

COMPONENT_TYPE = "llm-gateway:index:AgentgatewayPlane"
BACKEND_NAME = "openai"
ROUTE_NAME = "llm-gateway"
# The one-resource wrappers the backend and the route lived in before this component.
_FORMER_BACKEND_TYPE = "llm-gateway:index:OpenAIBackend"
_FORMER_ROUTE_TYPE = "llm-gateway:index:AIRoute"


@dataclass(frozen=True)
class GatewayIdentity:
    """What the Gateway's AgentgatewayPolicy checks when caller identity is on."""

    mode: str
    audience: str
    issuer: str
    jwks: str
    apps: tuple[AppConfig, ...]
    smoke_subject: str  # the smoke pods' ServiceAccount, always admitted


def gateway_identity(cfg: LlmGatewayConfig) -> GatewayIdentity | None:
    """The policy's inputs from the stack config; None with identity off."""
    identity = cfg.identity
    if identity.mode == "off":
        return None
    assert identity.issuer is not None  # config rule: the gateway plane needs both
    assert identity.jwks is not None
    return GatewayIdentity(
        mode=identity.mode,
        audience=identity.audience,
        issuer=identity.issuer,
        jwks=identity.jwks,
        apps=tuple(cfg.clients),
        smoke_subject=agentgateway_policy.subject(cfg.namespace, SMOKE_ACCOUNT),
    )


class AgentgatewayPlane(pulumi.ComponentResource):
    """The agentgateway side. `routes` is False under the kill switch: the HTTPRoute goes,
    everything else (and so the key in the backend) stays, so turning it back on is one
    route away. Children are named after the component (`<name>-gateway`, …)."""

    gateway: k8s.apiextensions.CustomResource
    network_policy: k8s.networking.v1.NetworkPolicy
    backend: k8s.apiextensions.CustomResource
    route: k8s.apiextensions.CustomResource | None
    identity_policy: k8s.apiextensions.CustomResource | None
    endpoint: str

    def __init__(
        self,
        name: str,
        *,
        namespace: pulumi.Input[str],
        namespace_name: str,
        config: GatewayConfig,
        routes: bool,
        upstream_url: str,
        secret_name: str,
        clients: Sequence[ClientConfig],
        scraper: ClientConfig,
        model: str | None = None,
        skip_await: bool = False,
        identity: GatewayIdentity | None = None,
        formerly_under: pulumi.Resource | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__(COMPONENT_TYPE, name, None, opts)
        self._formerly_under = formerly_under

        manifest = gateway_shape.gateway(
            config.name,
            namespace,
            class_name=config.class_name,
            port=config.port,
            skip_await=skip_await,
        )
        self.gateway = declare_custom_resource(f"{name}-gateway", manifest, self._moved_here())
        policy = network_policy.gateway_policy(
            config.name,
            namespace,
            pod_labels=gateway_shape.data_plane_selector(config.name),
            listener_port=config.port,
            metrics_port=gateway_shape.METRICS_PORT,
            clients=clients,
            scraper=scraper,
            skip_await=skip_await,
        )
        self.network_policy = k8s.networking.v1.NetworkPolicy(
            f"{name}-gateway-netpol",
            metadata=policy["metadata"],
            spec=policy["spec"],
            opts=self._moved_here(),
        )
        backend = agentgateway_backend.agentgateway_backend(
            BACKEND_NAME,
            namespace,
            secret_name=secret_name,
            upstream_url=upstream_url,
            model=model,
            skip_await=skip_await,
        )
        self.backend = declare_custom_resource(
            f"{name}-backend",
            backend,
            self._moved_here(from_wrapper=(_FORMER_BACKEND_TYPE, f"{name}-backend")),
        )
        self.identity_policy = None
        if identity is not None:
            self.identity_policy = self._declare_identity_policy(
                name, namespace, config, identity, skip_await
            )
        self.route = None
        if routes:
            route = http_route.http_route(
                ROUTE_NAME,
                namespace,
                gateway_name=config.name,
                backend_name=BACKEND_NAME,
                path_prefix=config.path_prefix,
                skip_await=skip_await,
            )
            self.route = declare_custom_resource(
                f"{name}-route",
                route,
                pulumi.ResourceOptions.merge(
                    self._moved_here(from_wrapper=(_FORMER_ROUTE_TYPE, f"{name}-route")),
                    pulumi.ResourceOptions(depends_on=[self.gateway, self.backend]),
                ),
            )
        self.endpoint = gateway_shape.endpoint(
            config.name, namespace_name, config.port, config.path_prefix
        )
        self.register_outputs(
            {"gatewayName": config.name, "backendName": BACKEND_NAME, "routes": routes}
        )

    def _moved_here(self, from_wrapper: tuple[str, str] | None = None) -> pulumi.ResourceOptions:
        """Fresh options for one child (the SDK consumes a child's aliases): parent this
        component; alias to where the child lived before it existed: straight under
        `formerly_under`, or inside a wrapper (type, name) that was its child."""
        if self._formerly_under is None:
            return pulumi.ResourceOptions(parent=self)
        former_parent: pulumi.Resource | pulumi.Output[str] = self._formerly_under
        if from_wrapper is not None:
            wrapper_type, wrapper_name = from_wrapper
            former_parent = pulumi.create_urn(wrapper_name, wrapper_type, parent=former_parent)
        return pulumi.ResourceOptions(parent=self, aliases=[pulumi.Alias(parent=former_parent)])

    def _declare_identity_policy(
        self,
        name: str,
        namespace: pulumi.Input[str],
        config: GatewayConfig,
        identity: GatewayIdentity,
        skip_await: bool,
    ) -> k8s.apiextensions.CustomResource:
        """The Gateway's AgentgatewayPolicy: JWT, authorization, per-app rate limits."""
        manifest = agentgateway_policy.identity_policy(
            f"{config.name}-identity",
            namespace,
            gateway_name=config.name,
            mode=identity.mode,
            audience=identity.audience,
            issuer=identity.issuer,
            jwks=identity.jwks,
            apps=identity.apps,
            smoke_subject=identity.smoke_subject,
            skip_await=skip_await,
        )
        return declare_custom_resource(
            f"{name}-identity-policy",
            manifest,
            pulumi.ResourceOptions.merge(
                self._moved_here(), pulumi.ResourceOptions(depends_on=[self.gateway])
            ),
        )
