"""Which headers cross the proxy, each way, decided per header.

Upstream (request): hop-by-hop headers and the ones aiohttp recomputes never go;
neither do client credentials (the proxy injects its own), nor headers that would
let a keyless app steer what the key's owner pays for or learns:
`OpenAI-Organization` / `OpenAI-Project` (a user-level key bills the org or
project named here; the operator picks it by choosing the key), `Cookie` (no
client's cookies belong on the proxy's account), and `Forwarded`, `X-Forwarded-*`,
`X-Real-IP` (in-cluster topology; spoofable by any client), and method or path
overrides (`X-HTTP-Method-Override`, `X-Original-URL`...) that would make an
upstream run something other than what the proxy checked. Everything else
(Content-Type, Accept, User-Agent, OpenAI-Beta, Idempotency-Key, X-Stainless-*...)
passes, as SDK features depend on it.

Client (response): hop-by-hop headers, headers the upstream lists in its own
`Connection`, body framing the proxy redoes, `Set-Cookie` (see Cookie above), and
any credential header an upstream might echo back (`Authorization`, `Api-Key`...)
are dropped; so is any header whose value contains the key, whatever its name.
"""

import aiohttp
from multidict import CIMultiDict, CIMultiDictProxy

from proxy.bounded_cache import remember

# Hop-by-hop headers (RFC 9110 §7.6.1): they describe one connection, never the message.
_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
_CREDENTIALS = frozenset({"authorization", "api-key", "x-api-key"})
# aiohttp's server inflates a compressed request body as it reads it, so the body
# goes upstream without Content-Encoding.
_REQUEST_DROP = (
    _HOP_BY_HOP
    | _CREDENTIALS
    | {
        "host",
        "content-length",
        "content-encoding",
        "accept-encoding",
        "expect",
        "openai-organization",
        "openai-project",
        "cookie",
        "forwarded",
        "x-real-ip",
        # Frameworks that honour these would run another method or path than the one
        # the proxy checked.
        "x-http-method-override",
        "x-http-method",
        "x-method-override",
        "x-original-url",
        "x-rewrite-url",
    }
)
_REQUEST_DROP_PREFIX = "x-forwarded-"
# aiohttp decodes gzip/deflate so usage can be read; the client gets identity.
_RESPONSE_DROP = _HOP_BY_HOP | _CREDENTIALS | {"content-length", "content-encoding", "set-cookie"}
# Encodings aiohttp can always decode without optional packages.
_UPSTREAM_ACCEPT_ENCODING = "gzip, deflate"


def _connection_listed(headers: CIMultiDictProxy[str]) -> set[str]:
    """Header names a message's own `Connection:` header declares hop-by-hop."""
    listed: set[str] = set()
    for value in headers.getall("Connection", ()):
        listed.update(token.strip().lower() for token in value.split(","))
    return listed


# Per header name as received: does it go upstream? Real traffic has a few dozen
# names; odd ones cannot bloat it or keep real ones out (proxy.bounded_cache).
_MAX_CACHED = 512
_passes_upstream: dict[str, bool] = {}


def _request_header_passes(name: str) -> bool:
    passes = _passes_upstream.get(name)
    if passes is None:
        lowered = name.lower()
        passes = lowered not in _REQUEST_DROP and not lowered.startswith(_REQUEST_DROP_PREFIX)
        remember(_passes_upstream, name, passes, len(name), _MAX_CACHED)
    return passes


def upstream_headers(incoming: CIMultiDictProxy[str], authorization: str) -> CIMultiDict[str]:
    """The client's headers minus the dropped ones, plus the proxy's key."""
    passes = _request_header_passes
    if "Connection" in incoming:
        listed = _connection_listed(incoming)
        headers: CIMultiDict[str] = CIMultiDict(
            (k, v) for k, v in incoming.items() if passes(k) and k.lower() not in listed
        )
    else:
        headers = CIMultiDict([(k, v) for k, v in incoming.items() if passes(k)])
    headers["Authorization"] = authorization
    headers["Accept-Encoding"] = _UPSTREAM_ACCEPT_ENCODING
    return headers


_passes_back: dict[str, bool] = {}


def _response_header_passes(name: str) -> bool:
    passes = _passes_back.get(name)
    if passes is None:
        passes = name.lower() not in _RESPONSE_DROP
        remember(_passes_back, name, passes, len(name), _MAX_CACHED)
    return passes


def client_headers(
    upstream: aiohttp.ClientResponse, key: str
) -> tuple[CIMultiDict[str], int | None]:
    """Response headers for the client and the body length when it is still exact."""
    incoming = upstream.headers
    passes = _response_header_passes
    if "Connection" in incoming:
        listed = _connection_listed(incoming)
        headers: CIMultiDict[str] = CIMultiDict(
            (k, v)
            for k, v in incoming.items()
            if passes(k) and k.lower() not in listed and key not in v
        )
    else:
        headers = CIMultiDict([(k, v) for k, v in incoming.items() if passes(k) and key not in v])
    headers["X-Accel-Buffering"] = "no"  # tell nginx-style ingresses not to buffer streams
    encoded = "Content-Encoding" in incoming
    length = None if encoded else upstream.content_length
    return headers, length
