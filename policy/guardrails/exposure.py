"""Who can reach a data plane: any pod that does spends the key.

No Service may expose a data plane outside the cluster (LoadBalancer or NodePort), every
data plane needs a NetworkPolicy that restricts its ingress, and an allowedClients entry
that admits every namespace is worth a second look.
"""

from collections.abc import Iterator, Mapping
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    PolicyResource,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)

from . import selectors

EXTERNAL_SERVICE_TYPES = ("LoadBalancer", "NodePort")


def _check_service(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type != selectors.SERVICE_TYPE:
        return
    kind = selectors.service_type(args.props)
    if kind not in EXTERNAL_SERVICE_TYPES:
        return
    selector = selectors.service_selector(args.props)
    if selectors.selects_data_plane(selector) or selectors.in_gateway(args.urn, args.props):
        report(
            f"Service {selectors.object_name(args.props)!r} is type {kind} in front of a "
            "data plane, so callers outside the cluster (and outside every NetworkPolicy) "
            "spend the key; use type ClusterIP.",
            args.urn,
        )


def _data_planes(resources: list[PolicyResource]) -> Iterator[tuple[PolicyResource, str]]:
    """Each data plane of the stack and its kind: proxy Deployments, agentgateway Gateways
    (whose pods the controller runs, labelled with the Gateway's name)."""
    for r in resources:
        if r.resource_type == selectors.DEPLOYMENT_TYPE:
            if selectors.selects_data_plane(selectors.template_labels(r.props)):
                yield r, "proxy"
        elif r.resource_type == selectors.GATEWAY_TYPE and selectors.in_gateway(r.urn, r.props):
            yield r, "agentgateway"


def _pod_labels(resource: PolicyResource) -> Mapping[str, Any]:
    if resource.resource_type == selectors.GATEWAY_TYPE:
        return {selectors.GATEWAY_NAME_LABEL: selectors.object_name(resource.props)}
    return selectors.template_labels(resource.props)


def _covered(plane: PolicyResource, policies: list[PolicyResource]) -> bool:
    pods, namespace = _pod_labels(plane), selectors.namespace_of(plane.props)
    return any(
        selectors.namespace_of(p.props) == namespace
        and selectors.policy_covers_ingress(p.props)
        and selectors.selects(selectors.policy_pod_selector(p.props), pods)
        for p in policies
    )


def _check_network_policies(args: StackValidationArgs, report: ReportViolation) -> None:
    policies = [r for r in args.resources if r.resource_type == selectors.NETWORK_POLICY_TYPE]
    for plane, kind in _data_planes(args.resources):
        if not _covered(plane, policies):
            report(
                f"the {kind} data plane {selectors.object_name(plane.props)!r} in namespace "
                f"{selectors.namespace_of(plane.props)!r} has no NetworkPolicy restricting "
                "its ingress in this stack, so every pod in the cluster can spend the key; "
                "declare one (LlmGateway does) whose podSelector matches its pods.",
                plane.urn,
            )


def _check_every_namespace(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type != selectors.NETWORK_POLICY_TYPE:
        return
    if not selectors.in_gateway(args.urn, args.props):
        return
    if any(
        selectors.is_empty_selector(peer.get("namespaceSelector"))
        for peer in selectors.ingress_peers(args.props)
    ):
        report(
            f"NetworkPolicy {selectors.object_name(args.props)!r} admits clients from every "
            "namespace (an allowedClients entry with namespaceLabels {}); list the client "
            "namespaces' labels instead, unless the whole cluster may spend the key.",
            args.urn,
        )


NO_EXTERNAL_SERVICE = ResourceValidationPolicy(
    name="no-external-service-for-data-plane",
    description="No LoadBalancer or NodePort Service in front of an llm-gateway data plane.",
    validate=_check_service,
    enforcement_level=EnforcementLevel.MANDATORY,
)

DATA_PLANE_NETWORK_POLICY = StackValidationPolicy(
    name="data-plane-has-network-policy",
    description="Every llm-gateway data plane has a NetworkPolicy restricting its ingress.",
    validate=_check_network_policies,
    enforcement_level=EnforcementLevel.MANDATORY,
)

CLIENTS_FROM_EVERY_NAMESPACE = ResourceValidationPolicy(
    name="clients-from-every-namespace",
    description="allowedClients admits every namespace (an empty namespaceSelector).",
    validate=_check_every_namespace,
    enforcement_level=EnforcementLevel.ADVISORY,
)
