"""The llm-gateway policy pack: `pulumi preview --policy-pack policy/` (see README, Guardrails)."""

from guardrails.pack import PACK_NAME, POLICIES
from pulumi_policy import PolicyPack

PolicyPack(name=PACK_NAME, policies=POLICIES)
