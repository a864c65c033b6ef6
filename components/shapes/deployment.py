"""apps/v1 Deployment running the bundled proxy (`python -m proxy serve`).

Rotation-safe by construction: the Secret is a volume mounted without subPath (the
kubelet swaps the file in place; subPath mounts and env vars never see updates) and the
pod template carries nothing derived from the key, so a new key never rolls pods.
"""

from typing import Any

import pulumi

from ..settings import ProxySettings
from .meta import labels, object_meta, selector
from .secret import KEY_FIELD

API_VERSION = "apps/v1"
KIND = "Deployment"
CONTAINER_PORT = 8080
PORT_NAME = "http"
KEY_MOUNT_DIR = "/etc/llm-gateway/secret"
RUN_AS = 10001
KEY_VOLUME = "api-key"
TMP_VOLUME = "tmp"
# Shutdown budget: endpoints controllers and kube-proxy learn of a terminating pod a few
# seconds late, so the pod keeps serving through the preStop sleep, then drains its
# in-flight calls on SIGTERM; the grace period covers both with a margin.
PRE_STOP_SLEEP_SECONDS = 5
DRAIN_TIMEOUT_SECONDS = 20
TERMINATION_GRACE_SECONDS = PRE_STOP_SLEEP_SECONDS + DRAIN_TIMEOUT_SECONDS + 5


def _env(settings: ProxySettings, upstream_url: str) -> list[dict[str, str]]:
    values = {
        "LLM_PROXY_HOST": "0.0.0.0",  # noqa: S104 - listening on the pod IP is the point
        "LLM_PROXY_PORT": str(CONTAINER_PORT),
        "LLM_PROXY_UPSTREAM": upstream_url,
        "LLM_PROXY_KEY_FILE": f"{KEY_MOUNT_DIR}/{KEY_FIELD}",
        "LLM_PROXY_ALLOWED_MODELS": ",".join(settings.allowed_models),
        "LLM_PROXY_MAX_IN_FLIGHT": str(settings.max_in_flight),
        "LLM_PROXY_MAX_BODY_BYTES": str(settings.max_body_bytes),
        "LLM_PROXY_CONNECT_TIMEOUT": str(settings.connect_timeout),
        "LLM_PROXY_READ_TIMEOUT": str(settings.read_timeout),
        "LLM_PROXY_DRAIN_TIMEOUT": str(DRAIN_TIMEOUT_SECONDS),
    }
    if settings.egress_proxy is not None:
        # The standard variables: the proxy resolves them once at start (proxy/egress.py).
        values["HTTPS_PROXY"] = settings.egress_proxy
        values["HTTP_PROXY"] = settings.egress_proxy
        values["NO_PROXY"] = ",".join(settings.no_proxy)
    return [{"name": name, "value": value} for name, value in values.items()]


def _resources(settings: ProxySettings) -> dict[str, dict[str, str]]:
    resources = settings.resources.model_dump(exclude_none=True)
    return {side: quantities for side, quantities in resources.items() if quantities}


def _probe(path: str, *, period: int, failures: int) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": PORT_NAME},
        "periodSeconds": period,
        "timeoutSeconds": 2,
        "failureThreshold": failures,
    }


def container_security_context() -> dict[str, Any]:
    """Pod Security "restricted" for a container of the proxy image (also the smoke pod)."""
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "runAsUser": RUN_AS,
        "runAsGroup": RUN_AS,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def pod_security_context() -> dict[str, Any]:
    """Pod-level half of the same: non-root uid/gid of the image, RuntimeDefault seccomp."""
    return {
        "runAsNonRoot": True,
        "runAsUser": RUN_AS,
        "runAsGroup": RUN_AS,
        "fsGroup": RUN_AS,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def _container(settings: ProxySettings, upstream_url: str) -> dict[str, Any]:
    return {
        "name": "proxy",
        "image": settings.image_ref,
        "imagePullPolicy": settings.image_pull_policy,
        "command": ["python", "-m", "proxy", "serve"],
        "ports": [{"name": PORT_NAME, "containerPort": CONTAINER_PORT, "protocol": "TCP"}],
        "env": _env(settings, upstream_url),
        "resources": _resources(settings),
        "startupProbe": _probe("/healthz", period=2, failures=30),
        "livenessProbe": _probe("/healthz", period=10, failures=3),
        "readinessProbe": _probe("/readyz", period=5, failures=2),
        "lifecycle": {"preStop": {"exec": {"command": ["sleep", str(PRE_STOP_SLEEP_SECONDS)]}}},
        "securityContext": container_security_context(),
        "volumeMounts": [
            {"name": KEY_VOLUME, "mountPath": KEY_MOUNT_DIR, "readOnly": True},
            {"name": TMP_VOLUME, "mountPath": "/tmp"},  # noqa: S108 - a private emptyDir
        ],
    }


def _pod_spec(
    settings: ProxySettings, upstream_url: str, secret_name: str, service_account: str
) -> dict[str, Any]:
    return {
        "serviceAccountName": service_account,
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": TERMINATION_GRACE_SECONDS,
        "securityContext": pod_security_context(),
        "containers": [_container(settings, upstream_url)],
        "volumes": [
            {
                "name": KEY_VOLUME,
                # 0440 + fsGroup: readable by the proxy's group only.
                "secret": {"secretName": secret_name, "defaultMode": 0o440, "optional": False},
            },
            {"name": TMP_VOLUME, "emptyDir": {"sizeLimit": "16Mi"}},
        ],
    }


def deployment(
    name: str,
    namespace: pulumi.Input[str],
    *,
    settings: ProxySettings,
    replicas: int,
    upstream_url: str,
    secret_name: str,
    service_account: str,
    skip_await: bool,
) -> dict[str, Any]:
    """The proxy Deployment; `replicas` is 0 under the kill switch."""
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": object_meta(name, namespace, component=name, skip_await=skip_await),
        "spec": {
            "replicas": replicas,
            "revisionHistoryLimit": 5,
            "selector": {"matchLabels": selector(name)},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
            },
            "template": {
                "metadata": {"labels": labels(name)},
                "spec": _pod_spec(settings, upstream_url, secret_name, service_account),
            },
        },
    }
