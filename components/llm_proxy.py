"""LlmProxy: the bundled proxy as ServiceAccount + Deployment + Service (+ PDB), and the
NetworkPolicy that limits who reaches it and where it may connect."""

from collections.abc import Sequence

import pulumi
import pulumi_kubernetes as k8s

from .config_model import ClientConfig, ProxyConfig
from .identity import ProxyIdentity
from .shapes import deployment, network_policy, pod_disruption_budget, service, service_account
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
        api_server_ports: Sequence[int] = (),
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
        if identity is not None:  # the JWKS, from the API server
            upstream_ports.extend(api_server_ports)
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
                depends_on=[self.service_account, self.network_policy],
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
