"""What the request path sees of identity: two calls, typed without importing PyJWT.

proxy.forward imports only this Protocol, so a proxy with identity off never loads
the JWT library; proxy.identity.gate.IdentityGate implements it.
"""

from typing import Protocol

from aiohttp import web

from proxy.observability import CallRecord


class IdentityHook(Protocol):
    async def admit(self, request: web.BaseRequest, call: CallRecord) -> object:
        """Before forwarding: verify, attribute (sets call.client), check budgets; raises
        the ProxyError to answer instead."""
        ...

    def charge(self, call: CallRecord) -> None:
        """When the call is recorded: add the upstream's reported tokens to its budget."""
        ...
