"""batch/v1 Job running the smoke client once inside the cluster (smokeTest.onUp).

The provider awaits Jobs: `pulumi up` returns once it completes, and fails if it does
not, quoting the pod's status. FallbackToLogsOnError makes the client's last output
(one `smoke failed: …` line) the container's termination message, so that quote says why.
"""

import hashlib
from collections.abc import Sequence

import pulumi
import pulumi_kubernetes as k8s

from ..config_model import CLIENT_LABEL
from ..identity import SMOKE_ACCOUNT, caller_token_mount, caller_token_volume
from .deployment import container_security_context, pod_security_context
from .meta import labels, object_meta

COMPONENT = "llm-smoke"
# One chat: the client's own request timeout (60 s) and, for the proxy, its wait for the
# new key (180 s) fit inside, with room for the image pull and start.
ACTIVE_DEADLINE_SECONDS = 330
REPLACE_UNREADY_ANNOTATION = "pulumi.com/replaceUnready"


def job_name(plane: str, *parts: str) -> str:
    """`llm-smoke-<plane>-<hash>`: the hash covers what the run proves (key fingerprint,
    image, URL, model), so changing any of them names, and so runs, a new Job."""
    digest = hashlib.sha256("\n".join(parts).encode()).hexdigest()[:10]
    return f"{COMPONENT}-{plane}-{digest}"


Command = pulumi.Input[Sequence[pulumi.Input[str]]]


def _container(image: str, pull_policy: str, command: Command) -> k8s.core.v1.ContainerArgsDict:
    return {
        "name": "smoke",
        "image": image,
        "image_pull_policy": pull_policy,
        "command": command,
        "termination_message_policy": "FallbackToLogsOnError",
        "security_context": container_security_context(),
        "resources": {
            "requests": {"cpu": "10m", "memory": "48Mi"},
            "limits": {"cpu": "200m", "memory": "128Mi"},
        },
    }


def smoke_job(
    name: pulumi.Input[str],
    namespace: pulumi.Input[str],
    *,
    image: str,
    pull_policy: str,
    command: Command,
    audience: str | None = None,
) -> k8s.batch.v1.JobArgsDict:
    """One pod, never retried (a retry would spend another real request), labelled as a
    client so the data planes' NetworkPolicies let it in; no API token."""
    container = _container(image, pull_policy, command)
    pod_spec: k8s.core.v1.PodSpecArgsDict = {
        "restart_policy": "Never",
        "automount_service_account_token": False,
        "enable_service_links": False,
        "security_context": pod_security_context(),
        "containers": [container],
    }
    if audience is not None:  # identity on: call with the llm-smoke ServiceAccount's token
        pod_spec["service_account_name"] = SMOKE_ACCOUNT
        pod_spec["volumes"] = [caller_token_volume(audience)]
        container["volume_mounts"] = [caller_token_mount()]
    spec: k8s.batch.v1.JobSpecArgsDict = {
        "backoff_limit": 0,
        "active_deadline_seconds": ACTIVE_DEADLINE_SECONDS,
        "template": {
            "metadata": {"labels": {**labels(COMPONENT), CLIENT_LABEL: "true"}},
            "spec": pod_spec,
        },
    }
    metadata = object_meta(name, namespace, component=COMPONENT, skip_await=False)
    # A failed Job is re-run by the next `pulumi up` (once the upstream is fixed, say):
    # the provider replaces a Job that is not complete instead of awaiting it again.
    metadata["annotations"] = {REPLACE_UNREADY_ANNOTATION: "true"}
    return {"metadata": metadata, "spec": spec}
