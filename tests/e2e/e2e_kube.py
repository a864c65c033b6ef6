"""Read what the API server holds, with the official `kubernetes` client."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

AGW_GROUP, AGW_VERSION = "agentgateway.dev", "v1alpha1"
GW_GROUP, GW_VERSION = "gateway.networking.k8s.io", "v1"


@dataclass
class Kube:
    """Typed-enough accessors for the objects the stack makes; None means 404."""

    api: client.ApiClient

    @classmethod
    def from_kubeconfig(cls, path: str) -> Kube:
        api = config.new_client_from_config(config_file=path)  # type: ignore[no-untyped-call]
        return cls(api)

    @property
    def core(self) -> Any:
        return client.CoreV1Api(self.api)

    @property
    def apps(self) -> Any:
        return client.AppsV1Api(self.api)

    @property
    def batch(self) -> Any:
        return client.BatchV1Api(self.api)

    @property
    def custom(self) -> Any:
        return client.CustomObjectsApi(self.api)

    def get(self, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        """The object as a plain dict (API field names), or None when it does not exist."""
        readers: dict[str, Callable[[], Any]] = {
            "Namespace": lambda: self.core.read_namespace(name),
            "Secret": lambda: self.core.read_namespaced_secret(name, namespace),
            "Pod": lambda: self.core.read_namespaced_pod(name, namespace),
            "Service": lambda: self.core.read_namespaced_service(name, namespace),
            "ServiceAccount": lambda: self.core.read_namespaced_service_account(name, namespace),
            "Deployment": lambda: self.apps.read_namespaced_deployment(name, namespace),
            "PodDisruptionBudget": lambda: client.PolicyV1Api(
                self.api
            ).read_namespaced_pod_disruption_budget(name, str(namespace)),
            "AgentgatewayBackend": lambda: self.custom.get_namespaced_custom_object(
                AGW_GROUP, AGW_VERSION, namespace, "agentgatewaybackends", name
            ),
            "AgentgatewayPolicy": lambda: self.custom.get_namespaced_custom_object(
                AGW_GROUP, AGW_VERSION, namespace, "agentgatewaypolicies", name
            ),
            "Gateway": lambda: self.custom.get_namespaced_custom_object(
                GW_GROUP, GW_VERSION, namespace, "gateways", name
            ),
            "HTTPRoute": lambda: self.custom.get_namespaced_custom_object(
                GW_GROUP, GW_VERSION, namespace, "httproutes", name
            ),
        }
        try:
            obj = readers[kind]()
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        if isinstance(obj, dict):
            return obj
        result: dict[str, Any] = self.api.sanitize_for_serialization(obj)  # type: ignore[no-untyped-call]
        return result

    def wait_gone(
        self, kind: str, name: str, namespace: str | None = None, timeout: float = 60
    ) -> bool:
        """Poll until the object is gone; False if it is still there at the deadline."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.get(kind, name, namespace) is None:
                return True
            time.sleep(0.5)
        return False


def kubectl_raw(kubeconfig: str, path: str) -> str:
    """`kubectl get --raw PATH`, as the README reads the issuer and the JWKS."""
    kubectl = os.path.join(os.environ["LLM_GATEWAY_E2E_BIN"], "kubectl")
    done = subprocess.run(
        [kubectl, "--kubeconfig", kubeconfig, "get", "--raw", path],
        check=True,
        capture_output=True,
        text=True,
        timeout=30,
    )
    return done.stdout.strip()
