"""smokeTest.onUp: `pulumi up` itself sends the smoke request, one Job per data plane.

Each Job runs after its plane is ready (depends_on), is awaited by the provider, and
fails the update with the smoke client's one-line reason. For the proxy plane the client
first waits until the answering pod serves the stack's key fingerprint, so after a
rotation the update proves the *new* key works upstream (that wait is the kubelet's
Secret sync, about a minute). The Job's name hashes what it proves, so an update that
changes neither key, image, URL nor model runs nothing. Off by default: each run spends
one real request.
"""

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from .config_model import LlmGatewayConfig
from .shapes.smoke_job import ACTIVE_DEADLINE_SECONDS, job_name, smoke_job
from .smoke_output import smoke_client_command

OFF = "off (smokeTest.onUp is false; the smokeTest output runs the same check by hand)"
# The provider's wait for the Job: its own deadline plus the pod's scheduling.
_JOB_TIMEOUT = pulumi.CustomTimeouts(create=f"{ACTIVE_DEADLINE_SECONDS + 60}s")


@dataclass(frozen=True)
class PlaneUnderTest:
    """One data plane the Job calls: its name, in-cluster URL, and what must be ready first
    (its plane component, which stands for all its objects)."""

    plane: str
    url: str
    ready_first: Sequence[pulumi.Resource]
    reports_key: bool  # only the bundled proxy tells which key it holds


def _outcome(plane: str, job: k8s.batch.v1.Job) -> pulumi.Output[str]:
    """`<plane>: passed (job <name>, completed <time>)`; the update fails otherwise."""

    def describe(args: list[object]) -> str:
        name, status = args
        finished = getattr(status, "completion_time", None)
        return f"{plane}: passed (job {name}, completed {finished or 'earlier'})"

    return pulumi.Output.all(job.metadata.name, job.status).apply(describe)


def _smoke_job(
    name: str,
    cfg: LlmGatewayConfig,
    namespace: pulumi.Input[str],
    fingerprint: pulumi.Output[str],
    target: PlaneUnderTest,
    opts: pulumi.ResourceOptions,
) -> k8s.batch.v1.Job:
    image = cfg.proxy.image_ref
    assert image is not None  # config rule: onUp needs proxy.image
    model = cfg.smoke_test.model
    identity_on = cfg.identity.mode != "off"
    command = fingerprint.apply(
        lambda fp: smoke_client_command(
            target.url, model, fp if target.reports_key else None, with_token=identity_on
        )
    )
    job_id = fingerprint.apply(lambda fp: job_name(target.plane, fp, image, target.url, model))
    shape = smoke_job(
        job_id,
        namespace,
        image=image,
        pull_policy=cfg.proxy.image_pull_policy,
        command=command,
        audience=cfg.identity.audience if identity_on else None,
    )
    return k8s.batch.v1.Job(
        f"{name}-smoke-{target.plane}",
        metadata=shape["metadata"],
        spec=shape["spec"],
        opts=pulumi.ResourceOptions.merge(
            opts,
            pulumi.ResourceOptions(
                depends_on=list(target.ready_first), custom_timeouts=_JOB_TIMEOUT
            ),
        ),
    )


def declare_smoke_jobs(
    name: str,
    cfg: LlmGatewayConfig,
    namespace: pulumi.Input[str],
    fingerprint: pulumi.Output[str],
    targets: Sequence[PlaneUnderTest],
    opts: pulumi.ResourceOptions,
    *,
    withheld: str | None = None,
) -> tuple[list[k8s.batch.v1.Job], pulumi.Output[str]]:
    """The Jobs and the `smokeOnUp` output, one line per plane. None when onUp is off, or
    when `withheld` says why no request may be sent (the kill switch): that is the output."""
    if not cfg.smoke_test.on_up:
        return [], pulumi.Output.from_input(OFF)
    if withheld is not None:
        return [], pulumi.Output.from_input(withheld)
    jobs = [_smoke_job(name, cfg, namespace, fingerprint, target, opts) for target in targets]
    outcomes = [_outcome(target.plane, job) for target, job in zip(targets, jobs, strict=True)]
    return jobs, pulumi.Output.all(*outcomes).apply("\n".join)
