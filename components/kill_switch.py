"""`killSwitch`: what turning it on cuts, decided here and nowhere else.

It cuts traffic, not configuration: the agentgateway plane loses its HTTPRoute (the
Gateway, the backend and the key stay), the proxy runs zero replicas (its Service,
NetworkPolicy and PodDisruptionBudget stay), and no smoke request is sent; the two smoke
outputs say why instead. Turned off again, the stack renders exactly as if it had never
been on. LlmGateway asks this module and hands each part only the answer it needs.
"""

from dataclasses import dataclass

# The `smokeTest` output while on: a command that fails, saying why and how to restore.
SMOKE_TEST_WHILE_ON = (
    "echo 'smokeTest: killSwitch is on, so all LLM traffic is cut on purpose; "
    "pulumi config set killSwitch false && pulumi up restores it' >&2; exit 1"
)
# The `smokeOnUp` output while on (and smokeTest.onUp set): no Job is declared.
SMOKE_ON_UP_WHILE_ON = "skipped: killSwitch is on, so no smoke request is sent"


@dataclass(frozen=True)
class KillSwitch:
    """The stack's kill switch and what it means for each part."""

    on: bool

    @property
    def gateway_routes(self) -> bool:
        """Whether the agentgateway plane declares its HTTPRoute."""
        return not self.on

    def proxy_replicas(self, configured: int) -> int:
        """The proxy Deployment's replica count (its PDB keeps following `configured`)."""
        return 0 if self.on else configured

    @property
    def sends_smoke(self) -> bool:
        """Whether the smoke output runs a request and smokeTest.onUp declares its Jobs."""
        return not self.on
