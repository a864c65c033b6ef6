"""Verify a projected ServiceAccount token (a JWT) offline, with PyJWT.

Checks: the signature against the cluster's JWKS (asymmetric algorithms only, the one
the key declares), `iss`, `aud`, `exp` and `nbf` with a small skew, and the
`kubernetes.io` claims that name the namespace and ServiceAccount (consistent with
`sub`). A verified token is cached by its SHA-256 until it expires, so a caller's
later calls cost one hash and one dictionary lookup. The token itself is never kept,
logged or put in a message.
"""

import hashlib
import time
from dataclasses import dataclass

import jwt

from proxy.identity.jwks import JwksSource, JwksUnavailable

LEEWAY_SECONDS = 30
MAX_CACHED = 10_000


@dataclass(frozen=True, slots=True)
class Caller:
    """Who a verified token says is calling."""

    namespace: str
    service_account: str
    pod: str | None
    expires: float


class TokenRejected(Exception):
    """The token is not valid here; `reason` is safe to show to the caller."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class IdentityUnavailable(Exception):
    """The keys to check tokens with are not available; not the caller's fault."""


def looks_like_jwt(credential: str) -> bool:
    """Three base64url segments: what tells a token from a dummy API key (attribute mode)."""
    parts = credential.split(".")
    return len(parts) == 3 and all(parts) and credential.startswith("eyJ")


class TokenVerifier:
    """Turns a bearer token into a Caller, or says why not."""

    def __init__(self, jwks: JwksSource, audience: str) -> None:
        self.jwks = jwks
        self.audience = audience
        self._cache: dict[bytes, Caller] = {}

    async def verify(self, token: str) -> Caller:
        digest = hashlib.sha256(token.encode()).digest()
        cached = self._cache.get(digest)
        now = time.time()
        if cached is not None:
            if now < cached.expires:
                return cached
            del self._cache[digest]
        caller = await self._verify(token)
        if len(self._cache) >= MAX_CACHED:
            self._evict(now)
        self._cache[digest] = caller
        return caller

    def _evict(self, now: float) -> None:
        for digest in [d for d, c in self._cache.items() if c.expires <= now]:
            del self._cache[digest]
        if len(self._cache) >= MAX_CACHED:
            self._cache.clear()  # many live callers: start over rather than grow

    async def _verify(self, token: str) -> Caller:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.DecodeError:
            raise TokenRejected("the bearer token is not a well-formed JWT") from None
        kid = header.get("kid")
        if not isinstance(kid, str):
            raise TokenRejected("the token names no signing key (no `kid` header)")
        if not self.jwks.ready:
            try:
                await self.jwks.refresh()
            except JwksUnavailable as exc:
                raise IdentityUnavailable(str(exc)) from None
        key = await self.jwks.key(kid)
        if key is None:
            raise TokenRejected(
                "the token is signed by a key this cluster does not publish (another "
                "cluster or issuer?)"
            )
        try:
            claims = jwt.decode(
                token,
                key=key.key,
                algorithms=[key.algorithm],
                audience=self.audience,
                issuer=self.jwks.issuer,
                leeway=LEEWAY_SECONDS,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except jwt.ExpiredSignatureError:
            raise TokenRejected("the token has expired") from None
        except jwt.InvalidAudienceError:
            raise TokenRejected(
                f"the token's audience is not {self.audience!r}: request a projected token "
                f"with `audience: {self.audience}`"
            ) from None
        except jwt.InvalidIssuerError:
            raise TokenRejected("the token was not issued by this cluster (`iss`)") from None
        except jwt.ImmatureSignatureError:
            raise TokenRejected("the token is not valid yet (`nbf`/`iat`)") from None
        except jwt.InvalidSignatureError:
            raise TokenRejected("the token's signature does not verify") from None
        except jwt.MissingRequiredClaimError as exc:
            raise TokenRejected(f"the token has no `{exc.claim}` claim") from None
        except jwt.InvalidTokenError as exc:
            raise TokenRejected(f"the token is not valid ({type(exc).__name__})") from None
        return _caller(claims)


def _caller(claims: dict[str, object]) -> Caller:
    """The namespace and ServiceAccount from the `kubernetes.io` claims, matching `sub`."""
    info = claims.get("kubernetes.io")
    namespace = service_account = pod = None
    if isinstance(info, dict):
        namespace = info.get("namespace")
        account = info.get("serviceaccount")
        service_account = account.get("name") if isinstance(account, dict) else None
        pod_info = info.get("pod")
        pod = pod_info.get("name") if isinstance(pod_info, dict) else None
    if not isinstance(namespace, str) or not isinstance(service_account, str):
        raise TokenRejected("the token is not a Kubernetes ServiceAccount token")
    if claims.get("sub") != f"system:serviceaccount:{namespace}:{service_account}":
        raise TokenRejected("the token's `sub` does not match its ServiceAccount")
    exp = claims["exp"]
    assert isinstance(exp, int | float)  # PyJWT checked it
    return Caller(namespace, service_account, pod if isinstance(pod, str) else None, float(exp))
