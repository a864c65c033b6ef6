"""Which models a call may use: the proxy's allowlist, and an app's own list on top.

The proxy's list (LLM_PROXY_ALLOWED_MODELS) applies to every caller; an app's list
(`allowedModels` of its entry in LLM_PROXY_CLIENTS) narrows it for that app's calls.
Either makes the call *restricted*, and a restricted call fails closed: its model must
be found (in the body, a form field, a `model` query parameter, a tool) and be on every
list that applies, and endpoints whose model the proxy cannot see are refused unless
the operator allows them (LLM_PROXY_ALLOW_UNPOLICED_PATHS).
"""

from dataclasses import dataclass

from yarl import URL

from proxy import errors
from proxy.errors import ProxyError
from proxy.policy.caller import Admission
from proxy.policy.json_scan import FoundModel, shown_name
from proxy.policy.model_check import BodyModels
from proxy.routes import Policy, Route


@dataclass(frozen=True, slots=True)
class BodyRule:
    """What a call's body must show: made once per kind (below), chosen per call."""

    restricted: bool  # models found are checked against the lists
    read: bool  # buffer the body to read its models whatever its Content-Type
    checked: bool  # a model call: the body must name its model


FREE = BodyRule(restricted=False, read=False, checked=False)  # no list applies
UNCHECKED_PATH = BodyRule(restricted=True, read=False, checked=False)  # allowed unpoliced path
NO_MODEL_CALL = BodyRule(restricted=True, read=True, checked=False)  # reads, lists, deletes
MODEL_CALL = BodyRule(restricted=True, read=True, checked=True)  # runs the model it names
_BY_POLICY = {
    Policy.UNPOLICED: UNCHECKED_PATH,
    Policy.NO_MODEL: NO_MODEL_CALL,
    Policy.MODEL: MODEL_CALL,
}


class Allowlist:
    """The proxy's allowlist and the per-app lists' decisions; raises the 400/403 to answer."""

    def __init__(self, allowed_models: tuple[str, ...], allow_unpoliced_paths: bool) -> None:
        self.listed = allowed_models
        self.allowed = frozenset(allowed_models)
        self.allow_unpoliced_paths = allow_unpoliced_paths

    def check_head(self, rel_url: URL, route: Route) -> None:
        """Path and query, before the caller is known: the proxy's allowlist only."""
        if self.allowed:
            self._check_head(rel_url, route, self.allowed, None)

    def check_caller_head(self, rel_url: URL, route: Route, caller: Admission) -> None:
        """Path and query again for an app with its own list (the proxy's list is done)."""
        if caller.models:
            self._check_head(rel_url, route, caller.models, caller)

    def _check_head(
        self, rel_url: URL, route: Route, allowed: frozenset[str], caller: Admission | None
    ) -> None:
        if route.policy is Policy.UNPOLICED and not self.allow_unpoliced_paths:
            raise errors.unpoliced_path(route.label)
        if rel_url.raw_query_string:
            # A `model` query parameter (some upstreams read one) must be allowed too.
            for name, value in rel_url.query.items():
                if name.casefold() == "model" and value not in allowed:
                    raise self._refusal(FoundModel(value, shown_name(value)), caller)

    def body_rule(self, route: Route, caller: Admission) -> BodyRule:
        """How the body of this call is read: a dict lookup, no allocation."""
        if self.allowed or caller.models:
            return _BY_POLICY[route.policy]
        return FREE

    def check_body(self, found: BodyModels, rule: BodyRule, caller: Admission) -> FoundModel | None:
        """The model named in a refused body (raised as ProxyError), or None when it may go.

        Raises model_required (400) when what the body names cannot be told.
        """
        if not rule.restricted:
            return None
        if found.tools is None:
            raise errors.model_undetermined("a body over 1 MiB names a model below its top")
        allowed, own = self.allowed, caller.models
        for model in found.models + found.tools:
            name = model.name
            if name is None or (allowed and name not in allowed) or (own and name not in own):
                return model
        if rule.read and found.unreadable:  # what an upstream reads there is unknown
            raise errors.model_undetermined(found.unreadable)
        if rule.checked and not found.models:
            raise errors.model_undetermined("no `model` field found")
        return None

    def refusal(self, model: FoundModel, caller: Admission) -> ProxyError:
        """The 403 for a model one of the lists refuses, naming that list."""
        return self._refusal(model, caller if caller.models else None)

    def _refusal(self, model: FoundModel, caller: Admission | None) -> ProxyError:
        name = model.name
        if caller is None or (self.allowed and (name is None or name not in self.allowed)):
            return errors.model_not_allowed(model.shown, self.listed)
        return errors.model_not_allowed_for(str(caller.client), model.shown, caller.listed)
