"""The answers identity gives itself: 401, 403, 429 and 503, OpenAI-shaped.

Messages are built from the verifier's reasons and the config, never from the token
or any other header.
"""

from aiohttp import web

from proxy.errors import ProxyError
from proxy.identity.limits import Exceeded


class _Refusal(ProxyError):
    """A ProxyError with extra headers, that closes the connection after the answer.

    Identity refuses before the request body is read; the forwarder then stops reading
    it and closes the connection, so the answer says `Connection: close` and a
    keep-alive client (the SDKs' pools) opens a new one instead of reusing a dead one.
    """

    def __init__(
        self, *args: object, headers: dict[str, str] | None = None, **kwargs: object
    ) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.extra_headers = headers or {}

    def to_response(self) -> web.Response:
        response = super().to_response()
        response.headers.update(self.extra_headers)
        response.force_close()
        return response


def unauthenticated(reason: str) -> ProxyError:
    return _Refusal(
        401,
        f"This gateway needs the caller's Kubernetes ServiceAccount token as the API key: "
        f"{reason}.",
        "invalid_token",
        "authentication_error",
        headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
    )


def missing_token(audience: str) -> ProxyError:
    return _Refusal(
        401,
        "This gateway needs the caller's Kubernetes ServiceAccount token as the API key "
        f"(a projected token with audience {audience!r}, sent as `Authorization: Bearer "
        "<token>`); none was sent.",
        "missing_token",
        "authentication_error",
        headers={"WWW-Authenticate": "Bearer"},
    )


def unknown_app(namespace: str, service_account: str) -> ProxyError:
    return _Refusal(
        403,
        f"ServiceAccount {namespace}/{service_account} is not a client of this gateway; "
        "the operator lists apps in the stack config `clients`.",
        "unknown_client",
        "permission_error",
    )


def unavailable(reason: str) -> ProxyError:
    return _Refusal(
        503,
        f"The gateway cannot check tokens right now ({reason}); retry shortly.",
        "identity_unavailable",
        "server_error",
        retry_after=5,
    )


def duration(seconds: float) -> str:
    """OpenAI's reset format: `59s`, `6m0s`, `1h2m3s`."""
    whole = max(0, round(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"


def rate_limited(client: str, exceeded: Exceeded, now: float) -> ProxyError:
    headers: dict[str, str] = {}
    for kind, window in (("requests", exceeded.requests), ("tokens", exceeded.tokens)):
        if window is not None:
            current = window.current(now)
            headers[f"x-ratelimit-limit-{kind}"] = str(current.limit)
            headers[f"x-ratelimit-remaining-{kind}"] = str(max(0, current.limit - current.used))
            headers[f"x-ratelimit-reset-{kind}"] = duration(current.reset_in(now))
    if exceeded.period == "day":
        headers["x-should-retry"] = "false"  # the OpenAI SDKs would otherwise retry at once
    return _Refusal(
        429,
        f"Client {client!r} is over its budget of {exceeded.limit} {exceeded.kind} per "
        f"{exceeded.period} on this gateway replica; retry in {exceeded.retry_after} s.",
        "rate_limit_exceeded",
        exceeded.kind,
        retry_after=exceeded.retry_after,
        headers=headers,
    )
