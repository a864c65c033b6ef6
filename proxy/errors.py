"""OpenAI-shaped error responses, so SDKs raise their usual typed exceptions.

Messages are built only from request facts and settings, never from headers or
the key, so an error can be shown to a client or logged as is.
"""

import json

from aiohttp import web


class ProxyError(Exception):
    """A request the proxy answers itself, with an OpenAI-shaped body."""

    def __init__(
        self,
        status: int,
        message: str,
        code: str,
        error_type: str = "invalid_request_error",
        retry_after: int | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.error_type = error_type
        self.retry_after = retry_after

    def to_response(self) -> web.Response:
        body = {"error": {"message": self.message, "type": self.error_type, "code": self.code}}
        headers = {"X-Accel-Buffering": "no"}
        if self.retry_after is not None:
            headers["Retry-After"] = str(self.retry_after)
        return web.Response(
            status=self.status,
            body=json.dumps(body).encode(),
            content_type="application/json",
            headers=headers,
        )


def disabled() -> ProxyError:
    return ProxyError(
        503, "The LLM proxy is disabled by its operator.", "proxy_disabled", "server_error"
    )


def key_unavailable() -> ProxyError:
    return ProxyError(
        503,
        "The LLM proxy has no provider key loaded yet; try again shortly.",
        "key_unavailable",
        "server_error",
        retry_after=1,
    )


def overloaded(limit: int) -> ProxyError:
    return ProxyError(
        503,
        f"The LLM proxy is at its limit of {limit} requests in flight; retry shortly.",
        "proxy_overloaded",
        "server_error",
        retry_after=1,
    )


def body_too_large(limit: int) -> ProxyError:
    return ProxyError(
        413, f"Request body exceeds the proxy's limit of {limit} bytes.", "request_too_large"
    )


def malformed_json(detail: str) -> ProxyError:
    return ProxyError(400, f"Request body is not valid JSON: {detail}", "invalid_json")


def model_not_allowed(model: str, allowed: tuple[str, ...]) -> ProxyError:
    return ProxyError(
        403,
        f"Model {model!r} is not allowed by this proxy; allowed models: {', '.join(allowed)}.",
        "model_not_allowed",
        "permission_error",
    )


def not_found(path: str) -> ProxyError:
    return ProxyError(404, f"No route for {path!r}: the proxy forwards /v1/... only.", "not_found")


def upstream_timeout(phase: str) -> ProxyError:
    return ProxyError(
        504,
        f"The upstream did not answer in time ({phase} timeout).",
        "upstream_timeout",
        "server_error",
    )


def upstream_unreachable(reason: str) -> ProxyError:
    return ProxyError(
        502,
        f"The upstream could not be reached: {reason}.",
        "upstream_unreachable",
        "server_error",
    )


def internal() -> ProxyError:
    """A bug in the proxy; the detail goes nowhere, as it could echo request data."""
    return ProxyError(
        500, "The LLM proxy failed to handle this request.", "proxy_error", "server_error"
    )
