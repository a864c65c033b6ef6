"""Which resources of a stack belong to llm-gateway, and which pods are its data planes.

Pure functions over the property maps the engine hands a policy (camelCase, as the
Kubernetes provider's schema spells them), so the repository's own test suite can check
these names against the component's (tests/unit/test_policy_pack.py) without the policy
pack's virtualenv.

A resource belongs to the gateway when an ancestor in its URN is one of the package's
components (`llm-gateway:index:…`, whatever language declared it) or when it carries the
package's `app.kubernetes.io/part-of: llm-gateway` label (a hand-written object).
"""

import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

PACKAGE = "llm-gateway"
PART_OF_LABEL = "app.kubernetes.io/part-of"
NAME_LABEL = "app.kubernetes.io/name"
PROXY_NAME = "llm-proxy"
# The label the agentgateway controller puts on the data-plane pods of a Gateway.
GATEWAY_NAME_LABEL = "gateway.networking.k8s.io/gateway-name"
GATEWAY_TYPE = "kubernetes:gateway.networking.k8s.io/v1:Gateway"
DEPLOYMENT_TYPE = "kubernetes:apps/v1:Deployment"
JOB_TYPE = "kubernetes:batch/v1:Job"
SECRET_TYPE = "kubernetes:core/v1:Secret"  # noqa: S105 - a type token, not a secret
SERVICE_TYPE = "kubernetes:core/v1:Service"
NETWORK_POLICY_TYPE = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
COMPONENT_TYPE = f"{PACKAGE}:index:LlmGateway"
WORKLOAD_TYPES = (DEPLOYMENT_TYPE, JOB_TYPE)

_URN = re.compile(
    r"^urn:pulumi:(?P<stack>[^:]+)::(?P<project>[^:]+)::(?P<types>.+?)::(?P<name>.*)$"
)


def stack_of(urn: str) -> str:
    """The stack name a URN was minted in (`urn:pulumi:<stack>::<project>::…`)."""
    match = _URN.match(urn)
    return match["stack"] if match else ""


def ancestor_types(urn: str) -> list[str]:
    """Types of the resource's ancestors, outermost first (the URN's `$`-joined chain)."""
    match = _URN.match(urn)
    return match["types"].split("$")[:-1] if match else []


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _sequence(value: Any) -> Sequence[Any]:
    return value if isinstance(value, Sequence) and not isinstance(value, str) else ()


def metadata(props: Mapping[str, Any]) -> Mapping[str, Any]:
    return _mapping(props.get("metadata"))


def labels(props: Mapping[str, Any]) -> Mapping[str, Any]:
    return _mapping(metadata(props).get("labels"))


def object_name(props: Mapping[str, Any]) -> str:
    return str(metadata(props).get("name") or "")


def namespace_of(props: Mapping[str, Any]) -> str:
    return str(metadata(props).get("namespace") or "")


def in_gateway(urn: str, props: Mapping[str, Any]) -> bool:
    """Declared by one of the package's components, or labelled as part of it."""
    if any(t.startswith(f"{PACKAGE}:") for t in ancestor_types(urn)):
        return True
    return labels(props).get(PART_OF_LABEL) == PACKAGE


def selects_data_plane(pod_labels: Mapping[str, Any]) -> bool:
    """Whether labels (a selector or a pod template's) pick proxy or agentgateway pods."""
    return pod_labels.get(NAME_LABEL) == PROXY_NAME or GATEWAY_NAME_LABEL in pod_labels


def pod_template(props: Mapping[str, Any]) -> Mapping[str, Any]:
    """A Deployment's or Job's pod template."""
    return _mapping(_mapping(props.get("spec")).get("template"))


def template_labels(props: Mapping[str, Any]) -> Mapping[str, Any]:
    return labels(pod_template(props))


def containers(props: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    """Every container (init containers too) of a workload's pod template."""
    spec = _mapping(pod_template(props).get("spec"))
    for key in ("initContainers", "containers"):
        for container in _sequence(spec.get(key)):
            yield _mapping(container)


def is_gateway_workload(resource_type: str, urn: str, props: Mapping[str, Any]) -> bool:
    """A Deployment or Job of the gateway, or one whose pods are a data plane's."""
    if resource_type not in WORKLOAD_TYPES:
        return False
    return in_gateway(urn, props) or selects_data_plane(template_labels(props))


def service_selector(props: Mapping[str, Any]) -> Mapping[str, Any]:
    return _mapping(_mapping(props.get("spec")).get("selector"))


def service_type(props: Mapping[str, Any]) -> str:
    return str(_mapping(props.get("spec")).get("type") or "ClusterIP")


def policy_pod_selector(props: Mapping[str, Any]) -> Mapping[str, Any]:
    """A NetworkPolicy's podSelector.matchLabels."""
    selector = _mapping(_mapping(props.get("spec")).get("podSelector"))
    return _mapping(selector.get("matchLabels"))


def policy_covers_ingress(props: Mapping[str, Any]) -> bool:
    """Whether a NetworkPolicy restricts ingress (policyTypes, or ingress rules given)."""
    spec = _mapping(props.get("spec"))
    types = _sequence(spec.get("policyTypes"))
    return "Ingress" in types if types else True


def selects(selector: Mapping[str, Any], pod_labels: Mapping[str, Any]) -> bool:
    """matchLabels semantics: every selector label is on the pod (an empty one selects all)."""
    return all(pod_labels.get(key) == value for key, value in selector.items())


def ingress_peers(props: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    """Every `from` peer of a NetworkPolicy's ingress rules."""
    for rule in _sequence(_mapping(props.get("spec")).get("ingress")):
        for peer in _sequence(_mapping(rule).get("from")):
            yield _mapping(peer)


def is_empty_selector(selector: Any) -> bool:
    """A present label selector with no labels and no expressions: it matches everything."""
    if not isinstance(selector, Mapping):
        return False
    return not selector.get("matchLabels") and not selector.get("matchExpressions")


def is_true(value: Any) -> bool:
    """A provider input that is true: providers receive their inputs as JSON strings."""
    return value is True or (isinstance(value, str) and value.strip().lower() == "true")
