"""The cluster's service-account signing keys, as the API server publishes them.

Fetched from the API server's service-account issuer discovery (`/openid/v1/jwks`, and
`/.well-known/openid-configuration` for the issuer when none is configured) with the
pod's own ServiceAccount token and the cluster CA. Kept in memory; refetched every
REFRESH_SECONDS, and at once when a token names a key id not seen yet (the cluster
rotated its signing key), but never more often than every REFETCH_MIN_SECONDS, so a
flood of tokens with made-up key ids costs at most one API request per interval.
"""

import asyncio
import json
import ssl
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import jwt
from yarl import URL

REFRESH_SECONDS = 300.0
REFETCH_MIN_SECONDS = 10.0
FETCH_TIMEOUT = 5.0
MAX_DOCUMENT_BYTES = 1 << 20
# Asymmetric algorithms only: a key set never makes an HMAC secret of a public key.
SIGNING_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)


class JwksUnavailable(Exception):
    """The keys could not be fetched (yet): the message says why, never a token."""


@dataclass(frozen=True, slots=True)
class SigningKey:
    """One usable public key and the one algorithm it verifies."""

    key: Any
    algorithm: str


def parse_jwks(document: object) -> dict[str, SigningKey]:
    """kid → key for every signing key PyJWT can load; others are skipped."""
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise JwksUnavailable("the JWKS document has no `keys` list")
    keys: dict[str, SigningKey] = {}
    for entry in document["keys"]:
        if not isinstance(entry, dict) or entry.get("use", "sig") != "sig":
            continue
        kid = entry.get("kid")
        try:
            loaded = jwt.PyJWK(entry)
        except (jwt.PyJWKError, jwt.InvalidKeyError):
            continue
        if not isinstance(kid, str) or loaded.algorithm_name not in SIGNING_ALGORITHMS:
            continue
        keys[kid] = SigningKey(loaded.key, loaded.algorithm_name)
    return keys


class JwksSource:
    """The current key set and issuer; `key()` refetches on an unknown kid (bounded)."""

    def __init__(
        self,
        jwks_url: str,
        token_file: Path | None,
        ca_file: Path | None,
        issuer: str | None,
    ) -> None:
        self.jwks_url = URL(jwks_url)
        self.discovery_url = self.jwks_url.with_path("/.well-known/openid-configuration")
        self.token_file = token_file
        self.ca_file = ca_file
        self.configured_issuer = issuer
        self.issuer: str | None = issuer
        self.keys: dict[str, SigningKey] = {}
        self.fetched_at = 0.0  # monotonic time of the last successful fetch
        self.tried_at = -REFETCH_MIN_SECONDS  # ... and of the last attempt
        self.refetch_min_seconds = REFETCH_MIN_SECONDS
        self.last_error: str | None = None
        self._inflight: asyncio.Future[None] | None = None
        self._session: aiohttp.ClientSession | None = None

    def _ssl(self) -> ssl.SSLContext | bool:
        if self.jwks_url.scheme != "https":
            return False
        context = ssl.create_default_context()
        if self.ca_file is not None:
            context.load_verify_locations(cafile=str(self.ca_file))
        return context

    def open(self) -> None:
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=self._ssl(), limit=2),
            timeout=aiohttp.ClientTimeout(total=FETCH_TIMEOUT),
            trust_env=False,  # the API server is in the cluster: never via the egress proxy
            cookie_jar=aiohttp.DummyCookieJar(),
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    @property
    def ready(self) -> bool:
        return bool(self.keys) and self.issuer is not None

    async def key(self, kid: str) -> SigningKey | None:
        """The key for `kid`, fetching the set again if it is unknown and the rate allows
        (or joining a fetch under way)."""
        found = self.keys.get(kid)
        if found is not None:
            return found
        due = time.monotonic() - self.tried_at >= self.refetch_min_seconds
        if self._inflight is not None or due:
            try:
                await self.refresh()
            except JwksUnavailable:
                return None  # keys known before still serve; this kid is not among them
        return self.keys.get(kid)

    def stale(self) -> bool:
        return time.monotonic() - self.fetched_at >= REFRESH_SECONDS

    async def refresh(self) -> None:
        """Fetch issuer (when not configured) and keys; callers arriving while a fetch is
        under way share it. A caller that goes away does not cancel it."""
        if self._inflight is None:
            self._inflight = asyncio.ensure_future(self._fetch())
            self._inflight.add_done_callback(self._fetched)
        await asyncio.shield(self._inflight)

    def _fetched(self, done: "asyncio.Future[None]") -> None:
        self._inflight = None
        if not done.cancelled():
            done.exception()  # retrieved: every awaiter has seen it already

    async def _fetch(self) -> None:
        self.tried_at = time.monotonic()
        try:
            if self.configured_issuer is None:
                discovery = await self._get_json(self.discovery_url)
                issuer = discovery.get("issuer") if isinstance(discovery, dict) else None
                if not isinstance(issuer, str) or not issuer:
                    raise JwksUnavailable("the discovery document names no issuer")
                self.issuer = issuer
            keys = parse_jwks(await self._get_json(self.jwks_url))
            if not keys:
                raise JwksUnavailable("the JWKS document holds no usable signing key")
        except JwksUnavailable as exc:
            self.last_error = str(exc)
            raise
        self.keys = keys
        self.fetched_at = time.monotonic()
        self.last_error = None

    def _headers(self) -> dict[str, str]:
        if self.token_file is None:
            return {}
        try:
            token = self.token_file.read_text().strip()  # small, on tmpfs; re-read: it rotates
        except OSError as exc:
            raise JwksUnavailable(
                f"cannot read the pod's ServiceAccount token file {self.token_file} "
                f"({type(exc).__name__})"
            ) from None
        return {"Authorization": f"Bearer {token}"}

    async def _get_json(self, url: URL) -> object:
        assert self._session is not None, "open() first"
        try:
            async with self._session.get(url, headers=self._headers()) as response:
                if response.status != 200:
                    raise JwksUnavailable(f"GET {url.path} answered HTTP {response.status}")
                body = await response.content.read(MAX_DOCUMENT_BYTES + 1)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise JwksUnavailable(f"GET {url.path} failed: {type(exc).__name__}") from None
        if len(body) > MAX_DOCUMENT_BYTES:
            raise JwksUnavailable(f"GET {url.path}: document over {MAX_DOCUMENT_BYTES} bytes")
        try:
            return json.loads(body)
        except ValueError:
            raise JwksUnavailable(f"GET {url.path}: not JSON") from None
