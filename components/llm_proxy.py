"""LlmProxy: the bundled proxy as ServiceAccount + Deployment + Service (+ PDB)."""

import pulumi
import pulumi_kubernetes as k8s

from .settings import ProxySettings
from .shapes import deployment, pod_disruption_budget, service, service_account

COMPONENT_TYPE = "llm-gateway:index:LlmProxy"
PROXY_NAME = "llm-proxy"


class LlmProxy(pulumi.ComponentResource):
    """The proxy side. `replicas` is the effective count (0 under the kill switch); the
    PDB follows the configured `settings.replicas`, so the kill switch touches nothing
    but the Deployment's replica count."""

    def __init__(
        self,
        name: str,
        *,
        namespace: pulumi.Input[str],
        settings: ProxySettings,
        replicas: int,
        upstream_url: str,
        secret_name: str,
        skip_await: bool = False,
        proxy_name: str = PROXY_NAME,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__(COMPONENT_TYPE, name, None, opts)
        child = pulumi.ResourceOptions(parent=self)

        account = service_account.service_account(proxy_name, namespace, skip_await=skip_await)
        self.service_account = k8s.core.v1.ServiceAccount(
            f"{name}-sa",
            metadata=account["metadata"],
            automount_service_account_token=account["automountServiceAccountToken"],
            opts=child,
        )
        workload = deployment.deployment(
            proxy_name,
            namespace,
            settings=settings,
            replicas=replicas,
            upstream_url=upstream_url,
            secret_name=secret_name,
            service_account=proxy_name,
            skip_await=skip_await,
        )
        self.deployment = k8s.apps.v1.Deployment(
            name,
            metadata=workload["metadata"],
            spec=workload["spec"],
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.service_account]),
        )
        front = service.service(proxy_name, namespace, skip_await=skip_await)
        self.service = k8s.core.v1.Service(
            f"{name}-svc", metadata=front["metadata"], spec=front["spec"], opts=child
        )
        self.pdb: k8s.policy.v1.PodDisruptionBudget | None = None
        if settings.replicas > 1:
            budget = pod_disruption_budget.pod_disruption_budget(
                proxy_name, namespace, skip_await=skip_await
            )
            self.pdb = k8s.policy.v1.PodDisruptionBudget(
                f"{name}-pdb", metadata=budget["metadata"], spec=budget["spec"], opts=child
            )
        self.register_outputs({"serviceName": proxy_name, "replicas": replicas})
