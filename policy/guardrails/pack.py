"""The pack: every rule, mandatory ones (block a preview) and advisory ones (warn)."""

from pulumi_policy import Policy

from .exposure import CLIENTS_FROM_EVERY_NAMESPACE, DATA_PLANE_NETWORK_POLICY, NO_EXTERNAL_SERVICE
from .key_secret import SECRET_NOT_IMMUTABLE, SECRET_UPDATED_IN_PLACE
from .kill_switch import KILL_SWITCH_ENGAGED
from .workloads import IMAGE_PINNED_IN_PROD, RESOURCE_LIMITS

PACK_NAME = "llm-gateway-guardrails"

POLICIES: list[Policy] = [
    SECRET_UPDATED_IN_PLACE,
    SECRET_NOT_IMMUTABLE,
    NO_EXTERNAL_SERVICE,
    DATA_PLANE_NETWORK_POLICY,
    IMAGE_PINNED_IN_PROD,
    RESOURCE_LIMITS,
    KILL_SWITCH_ENGAGED,
    CLIENTS_FROM_EVERY_NAMESPACE,
]
