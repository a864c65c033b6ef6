"""The gateway's pods: bounded resources everywhere, a pinned image in production.

Covers the proxy Deployment and the smoke Jobs (they run the proxy image too), and any
Deployment or Job whose pods carry a data plane's labels.
"""

import re

from pulumi_policy import (
    EnforcementLevel,
    PolicyConfigSchema,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
)

from . import selectors

DEFAULT_PROD_STACKS = "prod"
PINNED = re.compile(r"@sha256:[a-f0-9]{64}$")


def _check_pinned(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if not selectors.is_gateway_workload(args.resource_type, args.urn, args.props):
        return
    pattern = str(args.get_config().get("prodStackPattern", DEFAULT_PROD_STACKS))
    stack = selectors.stack_of(args.urn)
    if not re.search(pattern, stack):
        return
    for container in selectors.containers(args.props):
        image = str(container.get("image") or "")
        if not PINNED.search(image):
            report(
                f"container {container.get('name')!r} of {selectors.object_name(args.props)!r}"
                f" runs {image!r}, not pinned by digest, in stack {stack!r} (matches "
                f"prodStackPattern {pattern!r}); set proxy.imageDigest (`pulumi config set "
                "--path proxy.imageDigest sha256:<digest>`).",
                args.urn,
            )


def _check_limits(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if not selectors.is_gateway_workload(args.resource_type, args.urn, args.props):
        return
    for container in selectors.containers(args.props):
        resources = container.get("resources") or {}
        limits = resources.get("limits") or {}
        missing = [kind for kind in ("cpu", "memory") if not limits.get(kind)]
        if missing:
            report(
                f"container {container.get('name')!r} of {selectors.object_name(args.props)!r}"
                f" sets no {' or '.join(missing)} limit, so one pod can starve its node; set "
                f"proxy.resources.limits.{missing[0]}.",
                args.urn,
            )


IMAGE_PINNED_IN_PROD = ResourceValidationPolicy(
    name="proxy-image-pinned-in-prod",
    description="In production stacks (name matches prodStackPattern, default 'prod') the "
    "proxy image is pinned by digest.",
    validate=_check_pinned,
    enforcement_level=EnforcementLevel.MANDATORY,
    config_schema=PolicyConfigSchema(
        properties={
            "prodStackPattern": {
                "type": "string",
                "default": DEFAULT_PROD_STACKS,
                "description": "regular expression (searched) for production stack names",
            }
        }
    ),
)

RESOURCE_LIMITS = ResourceValidationPolicy(
    name="resource-limits-set",
    description="Every llm-gateway container sets CPU and memory limits.",
    validate=_check_limits,
    enforcement_level=EnforcementLevel.MANDATORY,
)
