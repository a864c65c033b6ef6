"""LlmProxy: the bundled proxy as ServiceAccount + Deployment + Service (+ PDB), the
NetworkPolicy that limits who reaches it and where it may connect, and with keySource api
the Role and RoleBinding that let it watch its one Secret."""

from collections.abc import Sequence

import pulumi
import pulumi_kubernetes as k8s

from .config_model import ClientConfig, ProxyConfig
from .identity import ProxyIdentity
from .shapes import (
    deployment,
    network_policy,
    pod_disruption_budget,
    role,
    role_binding,
    service,
    service_account,
)
from .shapes.meta import selector

COMPONENT_TYPE = "llm-gateway:index:LlmProxy"
PROXY_NAME = "llm-proxy"


def _rollout_timeouts(config: ProxyConfig) -> pulumi.CustomTimeouts:
    wait = f"{config.rollout_timeout}s"
    return pulumi.CustomTimeouts(create=wait, update=wait)


class LlmProxy(pulumi.ComponentResource):
    """The proxy side. `replicas` is the effective count (0 under the kill switch); the
    PDB follows the configured `config.replicas`, so the kill switch touches nothing
    but the Deployment's replica count."""

    def __init__(
        self,
        name: str,
        *,
        namespace: pulumi.Input[str],
        config: ProxyConfig,
        replicas: int,
        upstream_url: str,
        secret_name: str,
        clients: Sequence[ClientConfig],
        scraper: ClientConfig,
        skip_await: bool = False,
        identity: ProxyIdentity | None = None,
        proxy_name: str = PROXY_NAME,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__(COMPONENT_TYPE, name, None, opts)
        child = pulumi.ResourceOptions(parent=self)

        account = service_account.service_account(proxy_name, namespace, skip_await=skip_await)
        self.service_account = k8s.core.v1.ServiceAccount(
            f"{name}-sa",
            metadata=account["metadata"],
            automount_service_account_token=account["automount_service_account_token"],
            opts=child,
        )
        # Declared before the pods, so they never run unfenced.
        upstream_ports = [network_policy.url_port(upstream_url), *config.extra_egress_ports]
        if config.egress_proxy is not None:
            upstream_ports.append(network_policy.url_port(config.egress_proxy))
        # The API server: for the JWKS (identity) and for the key Secret's watch (keySource api).
        if deployment.needs_api_credentials(config, identity):
            api_ports = dict.fromkeys(config.api_server_ports)
            upstream_ports += [p for p in api_ports if p not in upstream_ports]
        self.role: k8s.rbac.v1.Role | None = None
        self.role_binding: k8s.rbac.v1.RoleBinding | None = None
        if config.key_source == "api":
            self._grant_secret_read(name, namespace, proxy_name, secret_name, skip_await)
        policy = network_policy.proxy_policy(
            proxy_name,
            namespace,
            pod_labels=selector(proxy_name),
            port=deployment.CONTAINER_PORT,
            metrics_port=deployment.METRICS_PORT,
            clients=clients,
            scraper=scraper,
            upstream_ports=upstream_ports,
            skip_await=skip_await,
        )
        self.network_policy = k8s.networking.v1.NetworkPolicy(
            f"{name}-netpol", metadata=policy["metadata"], spec=policy["spec"], opts=child
        )
        workload = deployment.deployment(
            proxy_name,
            namespace,
            config=config,
            replicas=replicas,
            upstream_url=upstream_url,
            secret_name=secret_name,
            service_account=proxy_name,
            skip_await=skip_await,
            identity=identity,
        )
        self.deployment = k8s.apps.v1.Deployment(
            name,
            opts=pulumi.ResourceOptions(
                parent=self,
                depends_on=[self.service_account, self.network_policy, *self._grants()],
                # Fail well before the provider's 10 minutes, quoting the pods' reason.
                custom_timeouts=_rollout_timeouts(config),
            ),
            metadata=workload["metadata"],
            spec=workload["spec"],
        )
        front = service.service(proxy_name, namespace, skip_await=skip_await)
        self.service = k8s.core.v1.Service(
            f"{name}-svc", metadata=front["metadata"], spec=front["spec"], opts=child
        )
        self.pdb: k8s.policy.v1.PodDisruptionBudget | None = None
        if config.replicas > 1:
            budget = pod_disruption_budget.pod_disruption_budget(
                proxy_name, namespace, skip_await=skip_await
            )
            self.pdb = k8s.policy.v1.PodDisruptionBudget(
                f"{name}-pdb", metadata=budget["metadata"], spec=budget["spec"], opts=child
            )
        self.register_outputs({"serviceName": proxy_name, "replicas": replicas})

    def _grants(self) -> list[pulumi.Resource]:
        """The Role and RoleBinding, when declared: pods start only once they can read."""
        return [r for r in (self.role, self.role_binding) if r is not None]

    def _grant_secret_read(
        self,
        name: str,
        namespace: pulumi.Input[str],
        proxy_name: str,
        secret_name: str,
        skip_await: bool,
    ) -> None:
        """get/list/watch on the key Secret alone, for the proxy's ServiceAccount."""
        child = pulumi.ResourceOptions(parent=self)
        role_name = f"{proxy_name}-key-reader"
        granted = role.role(
            role_name,
            namespace,
            secret_name=secret_name,
            component=proxy_name,
            skip_await=skip_await,
        )
        self.role = k8s.rbac.v1.Role(
            f"{name}-role", metadata=granted["metadata"], rules=granted["rules"], opts=child
        )
        binding = role_binding.role_binding(
            role_name,
            namespace,
            role_name=role_name,
            service_account=proxy_name,
            component=proxy_name,
            skip_await=skip_await,
        )
        self.role_binding = k8s.rbac.v1.RoleBinding(
            f"{name}-rolebinding",
            metadata=binding["metadata"],
            role_ref=binding["role_ref"],
            subjects=binding["subjects"],
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.role, self.service_account]),
        )
