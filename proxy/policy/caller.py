"""Who a call is from, and the interface a caller check (identity) plugs into the room by.

Typed without importing PyJWT: a proxy with identity off never loads the JWT library;
proxy.identity.gate.IdentityGate implements `CallerCheck`.
"""

from dataclasses import dataclass
from typing import Protocol

from aiohttp import web

from proxy.observability import CallRecord


@dataclass(frozen=True, slots=True)
class Admission:
    """The caller of one admitted call and what it may use.

    `client` is its log name and `label` its bounded metric label (None: identity is
    off). `models` is the app's own model list (`clients[].allowedModels`); empty when
    only the proxy's allowlist applies. `listed` is the same list in config order, for
    the refusal's message. One instance per configured app, made once, so admitting a
    call allocates nothing.
    """

    client: str | None
    label: str | None
    models: frozenset[str] = frozenset()
    listed: tuple[str, ...] = ()


NOBODY = Admission(None, None)  # identity off: calls are nobody's, only the allowlist applies


class CallerCheck(Protocol):
    async def admit(self, request: web.BaseRequest, call: CallRecord) -> Admission:
        """Before forwarding: verify, attribute (sets call.client), check budgets; raises
        the ProxyError to answer instead."""
        ...

    def charge(self, call: CallRecord) -> None:
        """When the call is recorded: add the upstream's reported tokens to its budget."""
        ...
