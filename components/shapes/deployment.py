"""apps/v1 Deployment running the bundled proxy (`python -m proxy serve`).

Rotation-safe by construction: the Secret is a volume mounted without subPath (the
kubelet swaps the file in place; subPath mounts and env vars never see updates) and the
pod template carries nothing derived from the key, so a new key never rolls pods. With
keySource api the proxy also watches the Secret through the API (the rotation lands in
seconds, not at the kubelet's next sync): the pod gets a projected ServiceAccount token,
mounted into the proxy container alone, where every pod expects it; the mount stays the
fallback. With caller identity on, the proxy fetches the cluster's JWKS with that same
token: one credentials mount, whichever of the two needs it.

Env var names, ports, paths and the proxy's defaults come from proxy/contract.py, which
the proxy reads too.
"""

import pulumi
import pulumi_kubernetes as k8s

from proxy import contract

from ..config_model import ProxyConfig, quantity_value
from ..identity import ProxyIdentity
from .meta import labels, object_meta, selector

CONTAINER_PORT = contract.API_PORT
PORT_NAME = "http"
# /metrics is served here only: the scraper's NetworkPolicy rule opens this port alone.
METRICS_PORT = contract.METRICS_PORT
METRICS_PORT_NAME = "metrics"
RUN_AS = 10001
KEY_VOLUME = "api-key"
# keySource api or identity on: the pod's own API credentials, where in-pod clients look.
API_CREDENTIALS_VOLUME = "kube-api-access"
API_TOKEN_SECONDS = 3607  # what the kubelet itself gives; it refreshes the file at 80 %
TMP_VOLUME = "tmp"
# Shutdown budget: endpoints controllers and kube-proxy learn of a terminating pod a few
# seconds late, so the pod keeps serving through the preStop sleep, then drains its
# in-flight calls on SIGTERM; the grace period covers both with a margin.
PRE_STOP_SLEEP_SECONDS = 5
DRAIN_TIMEOUT_SECONDS = contract.DEFAULT_DRAIN_SECONDS
TERMINATION_GRACE_SECONDS = PRE_STOP_SLEEP_SECONDS + DRAIN_TIMEOUT_SECONDS + 5


MAX_WORKERS = 16  # past this a pod is better split into more replicas


def workers_for(config: ProxyConfig) -> int:
    """One proxy worker process per whole CPU of the container's limit (1 to MAX_WORKERS):
    a worker is one event loop, which uses one core; without a CPU limit, one."""
    limit = config.resources.limits.cpu
    return min(MAX_WORKERS, max(1, int(quantity_value(limit)))) if limit else 1


def needs_api_credentials(config: ProxyConfig, identity: ProxyIdentity | None) -> bool:
    """The Secret watch (keySource api) and the JWKS fetch (identity on) both call the
    API server with the pod's own token."""
    return config.key_source == "api" or identity is not None


def _env(
    config: ProxyConfig,
    upstream_url: str,
    secret_name: str,
    identity: ProxyIdentity | None,
) -> list[k8s.core.v1.EnvVarArgsDict]:
    values = contract.proxy_env(
        host=contract.POD_HOST,
        port=CONTAINER_PORT,
        metrics_port=METRICS_PORT,
        upstream=upstream_url,
        key_file=contract.KEY_FILE,
        allowed_models=config.allowed_models,
        allow_unpoliced_paths=config.allow_unpoliced_paths,
        max_in_flight=config.max_in_flight,
        max_body_bytes=config.max_body_bytes,
        connect_timeout=config.connect_timeout,
        read_timeout=config.read_timeout,
        drain_timeout=DRAIN_TIMEOUT_SECONDS,
        workers=workers_for(config),
        # The Secret is always mounted: no usable key at start is a misconfiguration; the
        # proxy exits saying why, and `pulumi up` quotes it (FallbackToLogsOnError).
        require_key=True,
        key_source=config.key_source,
        key_secret=secret_name if config.key_source == "api" else None,  # the pod's namespace
    )
    if config.egress_proxy is not None:
        # The standard variables: the proxy resolves them once at start (proxy/egress.py).
        values["HTTPS_PROXY"] = config.egress_proxy
        values["HTTP_PROXY"] = config.egress_proxy
        values["NO_PROXY"] = ",".join(config.no_proxy)
    if identity is not None:
        values.update(identity.env())
    return [{"name": name, "value": value} for name, value in values.items()]


def _resources(config: ProxyConfig) -> k8s.core.v1.ResourceRequirementsArgsDict:
    resources: k8s.core.v1.ResourceRequirementsArgsDict = {}
    if requests := config.resources.requests.model_dump(exclude_none=True):
        resources["requests"] = requests
    if limits := config.resources.limits.model_dump(exclude_none=True):
        resources["limits"] = limits
    return resources


def _probe(path: str, *, period: int, failures: int) -> k8s.core.v1.ProbeArgsDict:
    return {
        "http_get": {"path": path, "port": PORT_NAME},
        "period_seconds": period,
        "timeout_seconds": 2,
        "failure_threshold": failures,
    }


def container_security_context() -> k8s.core.v1.SecurityContextArgsDict:
    """Pod Security "restricted" for a container of the proxy image (also the smoke pod)."""
    return {
        "allow_privilege_escalation": False,
        "read_only_root_filesystem": True,
        "run_as_non_root": True,
        "run_as_user": RUN_AS,
        "run_as_group": RUN_AS,
        "capabilities": {"drop": ["ALL"]},
        "seccomp_profile": {"type": "RuntimeDefault"},
    }


def pod_security_context() -> k8s.core.v1.PodSecurityContextArgsDict:
    """Pod-level half of the same: non-root uid/gid of the image, RuntimeDefault seccomp."""
    return {
        "run_as_non_root": True,
        "run_as_user": RUN_AS,
        "run_as_group": RUN_AS,
        "fs_group": RUN_AS,
        "seccomp_profile": {"type": "RuntimeDefault"},
    }


def _pre_stop() -> k8s.core.v1.LifecycleArgsDict:
    return {"pre_stop": {"exec_": {"command": ["sleep", str(PRE_STOP_SLEEP_SECONDS)]}}}


def _container(
    config: ProxyConfig,
    upstream_url: str,
    secret_name: str,
    identity: ProxyIdentity | None,
) -> k8s.core.v1.ContainerArgsDict:
    mounts: list[k8s.core.v1.VolumeMountArgsDict] = [
        {"name": KEY_VOLUME, "mount_path": contract.KEY_MOUNT_DIR, "read_only": True},
        {"name": TMP_VOLUME, "mount_path": "/tmp"},  # noqa: S108 - a private emptyDir
    ]
    if needs_api_credentials(config, identity):
        mounts.append(
            {
                "name": API_CREDENTIALS_VOLUME,
                "mount_path": contract.POD_CREDENTIALS_DIR,
                "read_only": True,
            }
        )
    return {
        "name": "proxy",
        "image": config.image_ref,
        "image_pull_policy": config.image_pull_policy,
        "command": ["python", "-m", "proxy", "serve"],
        "ports": [
            {"name": PORT_NAME, "container_port": CONTAINER_PORT, "protocol": "TCP"},
            {"name": METRICS_PORT_NAME, "container_port": METRICS_PORT, "protocol": "TCP"},
        ],
        "env": _env(config, upstream_url, secret_name, identity),
        "resources": _resources(config),
        "startup_probe": _probe(contract.HEALTH_PATH, period=2, failures=30),
        "liveness_probe": _probe(contract.HEALTH_PATH, period=10, failures=3),
        "readiness_probe": _probe(contract.READY_PATH, period=5, failures=2),
        "lifecycle": _pre_stop(),
        # A proxy that exits at start leaves its last log lines in the pod's status, so
        # `pulumi up`'s error (which quotes pod statuses) says why.
        "termination_message_policy": "FallbackToLogsOnError",
        "security_context": container_security_context(),
        "volume_mounts": mounts,
    }


def _volumes(
    config: ProxyConfig, secret_name: str, identity: ProxyIdentity | None
) -> list[k8s.core.v1.VolumeArgsDict]:
    # 0440 + fsGroup: the key is readable by the proxy's group only.
    key: k8s.core.v1.SecretVolumeSourceArgsDict = {
        "secret_name": secret_name,
        "default_mode": 0o440,
        "optional": False,
    }
    volumes: list[k8s.core.v1.VolumeArgsDict] = [
        {"name": KEY_VOLUME, "secret": key},
        {"name": TMP_VOLUME, "empty_dir": {"size_limit": "16Mi"}},
    ]
    if needs_api_credentials(config, identity):
        volumes.append({"name": API_CREDENTIALS_VOLUME, "projected": _api_credentials()})
    return volumes


def _api_credentials() -> k8s.core.v1.ProjectedVolumeSourceArgsDict:
    """What automountServiceAccountToken would mount, declared so that only the proxy
    container gets it: a bound token, the cluster CA and the namespace."""
    return {
        "default_mode": 0o440,
        "sources": [
            {
                "service_account_token": {
                    "path": contract.TOKEN_FILE_NAME,
                    "expiration_seconds": API_TOKEN_SECONDS,
                }
            },
            {
                "config_map": {
                    "name": "kube-root-ca.crt",
                    "items": [{"key": "ca.crt", "path": contract.CA_FILE_NAME}],
                }
            },
            {
                "downward_api": {
                    "items": [
                        {
                            "path": contract.NAMESPACE_FILE_NAME,
                            "field_ref": {"field_path": "metadata.namespace"},
                        }
                    ]
                }
            },
        ],
    }


def _pod_spec(
    config: ProxyConfig,
    upstream_url: str,
    secret_name: str,
    service_account: str,
    identity: ProxyIdentity | None,
) -> k8s.core.v1.PodSpecArgsDict:
    return {
        "service_account_name": service_account,
        "automount_service_account_token": False,
        "enable_service_links": False,
        "termination_grace_period_seconds": TERMINATION_GRACE_SECONDS,
        "security_context": pod_security_context(),
        "containers": [_container(config, upstream_url, secret_name, identity)],
        # The API credentials as a projected volume of the proxy container alone:
        # automounting would hand every container of the pod a token.
        "volumes": _volumes(config, secret_name, identity),
    }


def _strategy() -> k8s.apps.v1.DeploymentStrategyArgsDict:
    """Surge one new pod before an old one goes: capacity never dips during a rollout."""
    return {"type": "RollingUpdate", "rolling_update": {"max_unavailable": 0, "max_surge": 1}}


def deployment(
    name: str,
    namespace: pulumi.Input[str],
    *,
    config: ProxyConfig,
    replicas: int,
    upstream_url: str,
    secret_name: str,
    service_account: str,
    skip_await: bool,
    identity: ProxyIdentity | None = None,
) -> k8s.apps.v1.DeploymentArgsDict:
    """The proxy Deployment; `replicas` is 0 under the kill switch."""
    template: k8s.core.v1.PodTemplateSpecArgsDict = {
        "metadata": {"labels": labels(name)},
        "spec": _pod_spec(config, upstream_url, secret_name, service_account, identity),
    }
    spec: k8s.apps.v1.DeploymentSpecArgsDict = {
        "replicas": replicas,
        "revision_history_limit": 5,
        # The cluster's own verdict on a stuck rollout matches the time `pulumi up` waits.
        "progress_deadline_seconds": config.rollout_timeout,
        "selector": {"match_labels": selector(name)},
        "strategy": _strategy(),
        "template": template,
    }
    return {
        "metadata": object_meta(name, namespace, component=name, skip_await=skip_await),
        "spec": spec,
    }
