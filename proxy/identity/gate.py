"""The hook on the request path: who is calling, may they, and what did they spend.

`admit()` runs before anything is forwarded: it reads the bearer token, verifies it
(proxy.identity.verify), maps it to a configured app and checks that app's budgets;
a refusal is a ProxyError (401, 403, 429 or 503) the forwarder answers as usual.
`charge()` runs when the call is recorded and adds the tokens the upstream reported.

Modes: `attribute` serves a call without a token (or with a non-JWT dummy key, as
keyless apps send today) as `anonymous` and a valid token of an unlisted app as
`other`; `require` answers 401 and 403 instead. A token that is present but invalid is
401 in both: serving it anonymously would hide a broken app setup.
"""

import asyncio
import contextlib
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from proxy.identity import refusals
from proxy.identity.clients import ANONYMOUS, OTHER, ClientSpec, ClientTable
from proxy.identity.jwks import REFRESH_SECONDS, JwksSource, JwksUnavailable
from proxy.identity.limits import Budgets
from proxy.identity.verify import IdentityUnavailable, TokenRejected, TokenVerifier, looks_like_jwt
from proxy.observability import CallRecord, EventLog
from proxy.policy.caller import Admission
from proxy.settings import Settings

RETRY_SECONDS = 5.0


@dataclass(frozen=True)
class IdentityConfig:
    """What the gate needs from the proxy's settings."""

    mode: str  # "attribute" or "require"
    audience: str
    jwks_url: str
    token_file: Path | None
    ca_file: Path | None
    issuer: str | None
    clients: tuple[ClientSpec, ...]
    shares: int  # replicas x workers: each process enforces 1/shares of each budget


def _bearer(request: web.BaseRequest) -> str | None:
    value = request.headers.get("Authorization")
    if value is None:
        return None
    scheme, _, credential = value.strip().partition(" ")
    credential = credential.strip()
    if scheme.lower() != "bearer" or not credential:
        return None
    return credential


class IdentityGate:
    """Verifies callers, attributes calls and enforces per-app budgets in this process."""

    def __init__(self, config: IdentityConfig, log: EventLog) -> None:
        self.config = config
        self.require = config.mode == "require"
        self.table = ClientTable(config.clients)
        self.jwks = JwksSource(config.jwks_url, config.token_file, config.ca_file, config.issuer)
        self.verifier = TokenVerifier(self.jwks, config.audience)
        self.budgets = Budgets(list(config.clients), config.shares)
        self.log = log
        self._anonymous = Admission(ANONYMOUS, ANONYMOUS)
        self._apps = {  # made once: admitting a listed app's call allocates nothing
            client.name: Admission(
                client.name, client.name, frozenset(client.allowed_models), client.allowed_models
            )
            for client in config.clients
        }
        self._refresher: asyncio.Task[None] | None = None

    @property
    def labels(self) -> frozenset[str]:
        return self.table.labels

    async def open(self) -> None:
        self.jwks.open()
        self._refresher = asyncio.create_task(self._keep_fresh())

    async def close(self) -> None:
        if self._refresher is not None:
            self._refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresher
        await self.jwks.close()

    async def _keep_fresh(self) -> None:
        """Fetch the keys at start, then every REFRESH_SECONDS; retry failures sooner."""
        while True:
            try:
                await self.jwks.refresh()
            except JwksUnavailable as exc:
                self.log.event("jwks_failed", reason=str(exc))
                await asyncio.sleep(RETRY_SECONDS)
                continue
            self.log.event("jwks_loaded", issuer=self.jwks.issuer, keys=sorted(self.jwks.keys))
            await asyncio.sleep(REFRESH_SECONDS)

    async def admit(self, request: web.BaseRequest, call: CallRecord) -> Admission:
        """Who calls; raises the 401/403/429/503 to answer instead of forwarding."""
        admission = await self._identify(request, call)
        client = admission.client or ANONYMOUS  # always set here
        call.client, call.client_label = client, admission.label
        call.needs_usage = self.budgets.counts_tokens(client)
        exceeded = self.budgets.admit(client)
        if exceeded is not None:
            raise refusals.rate_limited(client, exceeded, self.budgets.clock())
        return admission

    async def _identify(self, request: web.BaseRequest, call: CallRecord) -> Admission:
        """The caller; a refused one is still attributed (anonymous, or `ns/sa` as other)."""
        token = _bearer(request)
        if token is None or (not self.require and not looks_like_jwt(token)):
            if self.require:
                call.client = call.client_label = ANONYMOUS
                raise refusals.missing_token(self.config.audience)
            return self._anonymous
        try:
            caller = await self.verifier.verify(token)
        except TokenRejected as exc:
            call.client = call.client_label = ANONYMOUS
            raise refusals.unauthenticated(exc.reason) from None
        except IdentityUnavailable as exc:
            call.client = call.client_label = ANONYMOUS
            raise refusals.unavailable(str(exc)) from None
        client = self.table.find(caller.namespace, caller.service_account)
        if client is not None:
            return self._apps[client.name]
        account = f"{caller.namespace}/{caller.service_account}"
        if self.require:
            call.client, call.client_label = account, OTHER
            raise refusals.unknown_app(caller.namespace, caller.service_account)
        return Admission(account, OTHER)

    def charge(self, call: CallRecord) -> None:
        """Add the tokens the upstream reported to the caller's budgets."""
        if call.client is None:
            return
        tokens = (call.prompt_tokens or 0) + (call.completion_tokens or 0)
        if tokens:
            self.budgets.charge(call.client, tokens)


def api_server_jwks_url(environ: dict[str, str]) -> str:
    """The API server's service-account JWKS, as a pod reaches it (the env the kubelet sets)."""
    host = environ.get("KUBERNETES_SERVICE_HOST")
    port = environ.get("KUBERNETES_SERVICE_PORT", "443")
    if not host:
        raise ValueError(
            "LLM_PROXY_IDENTITY_JWKS_URL is unset and KUBERNETES_SERVICE_HOST too (not in a "
            "pod?): set the service-account JWKS URL"
        )
    shown = f"[{host}]" if ":" in host else host
    return f"https://{shown}:{port}/openid/v1/jwks"


def identity_config(settings: Settings, environ: dict[str, str]) -> IdentityConfig:
    """The gate's config from the proxy settings (and, for the JWKS URL, the pod's env)."""
    mode = settings.identity_mode
    assert mode != "off"
    return IdentityConfig(
        mode=mode,
        audience=settings.identity_audience,
        jwks_url=settings.identity_jwks_url or api_server_jwks_url(environ),
        token_file=settings.identity_token_file,
        ca_file=settings.identity_ca_file,
        issuer=settings.identity_issuer,
        clients=settings.clients,
        shares=settings.identity_shares * settings.workers,
    )
