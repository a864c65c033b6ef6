"""The one thing the request path asks about policy: may this call go, for whom, and
what is it charged to.

proxy.forward buffers and forwards; it asks the room at three points and answers a
ProxyError the room raises as it answers any other:
1. `check()` once the request's head is in: the proxy's allowlist on path and query
   (no I/O). It returns the caller when nobody checks identity, else None, and then
   2. `identify()`: the caller check (proxy.identity: token, app, budgets) and the
   app's own model list on path and query.
3. `body_rule()` says how to read the body, `check_body()` whether what it names may
   go, and `charge()` adds what the call cost once it is recorded.
A new check plugs in as a `CallerCheck` (per caller) or beside the allowlist here.
"""

from aiohttp import web

from proxy import errors
from proxy.observability import CallRecord
from proxy.policy.allowlist import Allowlist, BodyRule
from proxy.policy.caller import NOBODY, Admission, CallerCheck
from proxy.policy.model_check import BodyModels
from proxy.routes import Route
from proxy.settings import Settings


class PolicyRoom:
    """The allowlist and, when identity is on, the caller check, behind one interface."""

    def __init__(self, allowlist: Allowlist, caller_check: CallerCheck | None = None) -> None:
        self.allowlist = allowlist
        self.caller_check = caller_check

    @classmethod
    def for_settings(cls, settings: Settings) -> "PolicyRoom":
        """The room with the proxy's allowlist; identity, when on, is plugged in later."""
        return cls(Allowlist(settings.allowed_models, settings.allow_unpoliced_paths))

    def check(self, request: web.BaseRequest, route: Route) -> Admission | None:
        """The checks that need no I/O; the caller, or None when `identify()` must say."""
        self.allowlist.check_head(request.rel_url, route)
        return NOBODY if self.caller_check is None else None

    async def identify(self, request: web.BaseRequest, call: CallRecord, route: Route) -> Admission:
        """Who calls, may they (401/403/429), and may their app use this path and query."""
        assert self.caller_check is not None, "check() returned the caller already"
        caller = await self.caller_check.admit(request, call)
        self.allowlist.check_caller_head(request.rel_url, route, caller)
        return caller

    def body_rule(self, route: Route, caller: Admission) -> BodyRule:
        return self.allowlist.body_rule(route, caller)

    def check_no_body(self, rule: BodyRule) -> None:
        """A model call without a body cannot show its model: 400 while restricted."""
        if rule.checked:
            raise errors.model_undetermined("the request has no body")

    def check_body(
        self, found: BodyModels, rule: BodyRule, caller: Admission, call: CallRecord
    ) -> None:
        """May a body naming `found` go: raises the 400 or 403 to answer instead."""
        if found.models:
            call.model = found.models[0].shown
        refused = self.allowlist.check_body(found, rule, caller)
        if refused is not None:
            call.model = refused.shown
            raise self.allowlist.refusal(refused, caller)

    def charge(self, call: CallRecord) -> None:
        """What the call cost, to its caller's budgets (when identity is on)."""
        if self.caller_check is not None:
            self.caller_check.charge(call)
