"""The kill switch: worth a warning whenever a stack is deployed with it on.

It is the emergency stop (no HTTPRoute, the proxy at zero replicas); left on by
accident it looks like an outage. Seen on the LlmGateway component's `killSwitch`
output, or on a gateway proxy Deployment scaled to zero.
"""

from pulumi_policy import (
    EnforcementLevel,
    ReportViolation,
    StackValidationArgs,
    StackValidationPolicy,
)

from . import selectors


def _check(args: StackValidationArgs, report: ReportViolation) -> None:
    for r in args.resources:
        if r.resource_type == selectors.COMPONENT_TYPE and r.props.get("killSwitch") is True:
            report(
                f"LlmGateway {r.name!r} has its kill switch on: nothing is served. "
                "Turn it off with `pulumi config set killSwitch false` when the incident is over.",
                r.urn,
            )
            return
    for r in args.resources:
        if (
            r.resource_type == selectors.DEPLOYMENT_TYPE
            and selectors.in_gateway(r.urn, r.props)
            and selectors.selects_data_plane(selectors.template_labels(r.props))
            and r.props.get("spec", {}).get("replicas") == 0
        ):
            report(
                f"proxy Deployment {selectors.object_name(r.props)!r} is at 0 replicas (the "
                "kill switch is on?): nothing is served through it.",
                r.urn,
            )


KILL_SWITCH_ENGAGED = StackValidationPolicy(
    name="kill-switch-engaged",
    description="The llm-gateway kill switch is on (no route, proxy at zero replicas).",
    validate=_check,
    enforcement_level=EnforcementLevel.ADVISORY,
)
