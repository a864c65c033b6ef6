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


def buffers_full(limit: int) -> ProxyError:
    return ProxyError(
        503,
        f"The LLM proxy holds {limit} bytes of request bodies already; retry shortly.",
        "proxy_overloaded",
        "server_error",
        retry_after=1,
    )


def body_too_large(limit: int) -> ProxyError:
    return ProxyError(
        413, f"Request body exceeds the proxy's limit of {limit} bytes.", "request_too_large"
    )


def malformed_json(detail: str) -> ProxyError:
    """`detail` comes from the proxy's own scanner: a reason and an offset, never input."""
    return ProxyError(400, f"Request body is not valid JSON: {detail}.", "invalid_json")


def model_not_allowed(shown: str, allowed: tuple[str, ...]) -> ProxyError:
    """`shown` is already bounded and escaped (policy.json_scan.shown_name)."""
    return ProxyError(
        403,
        f"Model '{shown}' is not allowed by this proxy; allowed models: {', '.join(allowed)}.",
        "model_not_allowed",
        "permission_error",
    )


def model_not_allowed_for(client: str, shown: str, allowed: tuple[str, ...]) -> ProxyError:
    """An app's own model list (`clients[].allowedModels`) refuses `shown` (already bounded)."""
    return ProxyError(
        403,
        f"Model '{shown}' is not allowed for client {client!r}; its allowed models: "
        f"{', '.join(allowed)}.",
        "model_not_allowed",
        "permission_error",
    )


def model_undetermined(reason: str) -> ProxyError:
    return ProxyError(
        400,
        f"This proxy allows only listed models and could not determine this request's model "
        f"({reason}); send a JSON object body with a string `model`, or a `model` form field.",
        "model_required",
    )


def unpoliced_path(label: str) -> ProxyError:
    return ProxyError(
        403,
        f"This proxy restricts models and cannot check which model calls to {label} use "
        "(files, batches, assistants, fine-tuning and unknown endpoints are refused while "
        "an allowlist is set; the operator can allow them with "
        "LLM_PROXY_ALLOW_UNPOLICED_PATHS).",
        "path_not_allowed",
        "permission_error",
    )


def bad_path(reason: str) -> ProxyError:
    return ProxyError(400, f"Request path refused: {reason}.", "invalid_path")


def method_not_allowed(allowed: str) -> ProxyError:
    return ProxyError(
        405, f"Method not allowed; this proxy forwards {allowed}.", "method_not_allowed"
    )


def body_timeout(seconds: float) -> ProxyError:
    return ProxyError(
        408, f"The request body did not arrive within {seconds:g} s.", "request_timeout"
    )


def body_too_slow(rate: float, grace: float) -> ProxyError:
    return ProxyError(
        408,
        f"The request body arrived slower than {rate:g} bytes/s (after the first {grace:g} s).",
        "request_timeout",
    )


def bad_http(status: int) -> ProxyError:
    """aiohttp could not parse the request; its message may quote the input, so not used."""
    return ProxyError(status, "The request is not valid HTTP/1.1.", "invalid_request")


def upstream_protocol(reason: str) -> ProxyError:
    return ProxyError(
        502,
        f"The upstream sent an unusable response: {reason}.",
        "upstream_bad_response",
        "server_error",
    )


def not_found(path: str) -> ProxyError:
    shown = path if len(path) <= 64 else path[:64] + "…"
    return ProxyError(404, f"No route for {shown!r}: the proxy forwards /v1/... only.", "not_found")


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
