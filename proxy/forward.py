"""The request path: receive → check → forward → stream back → record.

One `Forwarder.handle` per /v1 call. It answers the checks it owns itself
(disabled, overloaded, no key, too large, malformed, model not allowed) with
OpenAI-shaped errors, otherwise sends the request upstream with the live key
and copies the response back chunk by chunk as the upstream produces it.
"""

import asyncio
import contextlib
import json
import re
import time
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from proxy import errors
from proxy.egress import egress_proxy_for
from proxy.errors import ProxyError
from proxy.keysource import KeySource
from proxy.observability import CallRecord, EventLog, Metrics
from proxy.settings import Settings
from proxy.usage import UsageTail

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
# Never forwarded upstream: hop-by-hop, values aiohttp recomputes, and every client
# credential (the proxy injects its own). aiohttp's server inflates a compressed
# request body as it reads it, so the body goes upstream without Content-Encoding.
_REQUEST_DROP = _HOP_BY_HOP | {
    "host",
    "content-length",
    "content-encoding",
    "accept-encoding",
    "expect",
    "authorization",
    "api-key",
    "x-api-key",
}
# Never copied back: hop-by-hop, and the body framing the proxy sets itself
# (aiohttp decodes gzip/deflate so usage can be read; the client gets identity).
_RESPONSE_DROP = _HOP_BY_HOP | {"content-length", "content-encoding"}
# Encodings aiohttp can always decode without optional packages.
_UPSTREAM_ACCEPT_ENCODING = "gzip, deflate"


def upstream_headers(incoming: CIMultiDictProxy[str], authorization: str) -> CIMultiDict[str]:
    """The client's headers minus hop-by-hop and credentials, plus the proxy's key."""
    drop = _REQUEST_DROP
    listed = incoming.get("Connection")
    if listed:
        drop = drop | {token.strip().lower() for token in listed.split(",")}
    headers = CIMultiDict((k, v) for k, v in incoming.items() if k.lower() not in drop)
    headers["Authorization"] = authorization
    headers["Accept-Encoding"] = _UPSTREAM_ACCEPT_ENCODING
    return headers


def client_headers(upstream: aiohttp.ClientResponse) -> tuple[CIMultiDict[str], int | None]:
    """Response headers for the client and the body length when it is still exact."""
    headers = CIMultiDict(
        (k, v) for k, v in upstream.headers.items() if k.lower() not in _RESPONSE_DROP
    )
    headers["X-Accel-Buffering"] = "no"  # tell nginx-style ingresses not to buffer streams
    encoded = "Content-Encoding" in upstream.headers
    length = None if encoded else upstream.content_length
    return headers, length


class _CoalescedResponse(web.StreamResponse):
    """Headers leave with the first body chunk: one write instead of two.

    Used for everything but SSE, where the client should see the status at once.
    (`_send_headers_immediately` is aiohttp's own switch, off for web.Response.)
    """

    _send_headers_immediately = False


def is_json(content_type: str) -> bool:
    return content_type == "application/json" or content_type.endswith("+json")


# A part named exactly `model` (its `name` parameter in any position), then its value.
_FORM_MODEL = re.compile(
    rb"content-disposition:[ \t]*form-data[^\r\n]*?;[ \t]*"
    rb'name=(?:"model"|model)[ \t]*(?:;[^\r\n]*)?\r\n'
    rb"(?:[^\r\n]+\r\n)*\r\n([^\r\n]*)\r\n",
    re.IGNORECASE,
)


def multipart_models(body: bytes) -> list[str]:
    """Every `model` form field of a multipart body, in order."""
    return [value.decode("utf-8", "replace") for value in _FORM_MODEL.findall(body)]


def json_model(body: bytes) -> str | None:
    """The `model` of a JSON object body; 400 when the body is not JSON."""
    if not body:
        return None
    try:
        document = json.loads(body)
    except ValueError as exc:
        raise errors.malformed_json(str(exc)) from exc
    model = document.get("model") if isinstance(document, dict) else None
    return model if isinstance(model, str) else None


async def read_bounded(content: aiohttp.StreamReader, limit: int) -> bytes:
    """A whole (JSON) body, refused with 413 as soon as it passes `limit`."""
    chunks = []
    size = 0
    while chunk := await content.readany():
        size += len(chunk)
        if size > limit:
            raise errors.body_too_large(limit)
        chunks.append(chunk)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def bounded_stream(
    content: aiohttp.StreamReader, limit: int, call: CallRecord
) -> AsyncIterator[bytes]:
    """Pass a non-JSON body (e.g. a file upload) through as it arrives, up to `limit`."""
    async for chunk in content.iter_any():
        call.bytes_in += len(chunk)
        if call.bytes_in > limit:
            raise errors.body_too_large(limit)
        yield chunk


class Forwarder:
    """Serves /v1/... for one app: holds the upstream session and the counters."""

    def __init__(
        self,
        settings: Settings,
        keys: KeySource,
        metrics: Metrics,
        log: EventLog,
    ) -> None:
        self.settings = settings
        self.keys = keys
        self.metrics = metrics
        self.log = log
        self.allowed_models = frozenset(settings.allowed_models)
        self.egress_proxy = egress_proxy_for(settings.upstream)
        self.in_flight = 0
        self.session: aiohttp.ClientSession | None = None

    def open_session(self) -> None:
        """Pooled, keep-alive upstream connections; no cookies shared between callers."""
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(
                limit=self.settings.max_in_flight, ttl_dns_cache=60, keepalive_timeout=30
            ),
            timeout=aiohttp.ClientTimeout(
                total=None,
                sock_connect=self.settings.connect_timeout,
                sock_read=self.settings.read_timeout,
            ),
            cookie_jar=aiohttp.DummyCookieJar(),
            auto_decompress=True,
        )

    async def close_session(self) -> None:
        if self.session is not None:
            await self.session.close()

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        call = CallRecord(request.method, request.path)
        if self.in_flight >= self.settings.max_in_flight:
            return self._answer(call, errors.overloaded(self.settings.max_in_flight))
        self.in_flight += 1
        try:
            return await self._forward(request, call)
        except ProxyError as exc:
            call.status, call.error = exc.status, exc.code
            return exc.to_response()
        except asyncio.CancelledError:
            call.error = "client_disconnected"
            call.status = call.status or 499
            raise
        except Exception as exc:
            call.error = f"internal_error:{type(exc).__name__}"  # the type only, never the text
            if call.status:  # the response has started: all that is left is to cut it
                raise
            call.status = 500
            return errors.internal().to_response()
        finally:
            self.in_flight -= 1
            self._record(call)

    def _answer(self, call: CallRecord, error: ProxyError) -> web.Response:
        call.status, call.error = error.status, error.code
        self._record(call)
        return error.to_response()

    def _record(self, call: CallRecord) -> None:
        duration = time.perf_counter() - call.started
        self.metrics.record(call, duration)
        self.log.call(call, duration)

    async def _forward(self, request: web.BaseRequest, call: CallRecord) -> web.StreamResponse:
        settings = self.settings
        if settings.disabled:
            raise errors.disabled()
        key = self.keys.current
        if key is None:
            raise errors.key_unavailable()
        body = await self._read_body(request, call)
        model = call.model
        if self.allowed_models and model is not None and model not in self.allowed_models:
            raise errors.model_not_allowed(model, settings.allowed_models)
        assert self.session is not None, "session opens at app startup"
        target = request.raw_path  # path and query exactly as the client sent them
        if not target.startswith("/"):  # absolute-form: `GET http://host/v1/... HTTP/1.1`
            target = request.rel_url.raw_path_qs
        url = URL(settings.upstream + target[3:], encoded=True)
        try:
            upstream = await self.session.request(
                request.method,
                url,
                headers=upstream_headers(request.headers, key.authorization),
                data=body,
                allow_redirects=False,
                proxy=self.egress_proxy,
            )
        except aiohttp.ConnectionTimeoutError as exc:
            raise errors.upstream_timeout("connect") from exc
        except TimeoutError as exc:  # aiohttp's read timeouts subclass TimeoutError
            raise errors.upstream_timeout("read") from exc
        except aiohttp.ClientError as exc:
            if isinstance(exc.__cause__, ProxyError):
                # bounded_stream refused the upload; aiohttp wraps what a body raises.
                raise exc.__cause__ from None
            raise errors.upstream_unreachable(type(exc).__name__) from exc
        try:
            response = await self._stream_back(request, upstream, call)
        except BaseException:
            upstream.close()  # client gone or cancelled: drop the upstream request too
            raise
        if call.error:
            upstream.close()
        else:
            upstream.release()  # back to the pool for the next call
        return response

    async def _read_body(
        self, request: web.BaseRequest, call: CallRecord
    ) -> bytes | AsyncIterator[bytes] | None:
        limit = self.settings.max_body_bytes
        length = request.content_length
        if length is not None and length > limit:
            raise errors.body_too_large(limit)
        if not request.body_exists:
            return None
        if request.headers.get("Expect", "").lower() == "100-continue":
            # curl asks for this before large uploads; the low-level server leaves it to us.
            await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        declared_json = is_json(request.content_type)
        if not declared_json and not self.allowed_models:
            return bounded_stream(request.content, limit, call)
        # JSON, or any body while an allowlist is set: read it (bounded) to find the model.
        body = await read_bounded(request.content, limit)
        call.bytes_in = len(body)
        if declared_json:
            call.model = json_model(body)
        elif request.content_type == "multipart/form-data":  # e.g. audio transcriptions
            models = multipart_models(body)
            # Servers differ on which repeated field wins: every one must be allowed.
            refused = [model for model in models if model not in self.allowed_models]
            call.model = next(iter(refused or models), None)
        else:
            # Upstreams may parse it as JSON anyway (FastAPI does when Content-Type is
            # missing), so its model is checked too; a body that is not JSON goes as is.
            with contextlib.suppress(ProxyError):
                call.model = json_model(body)
        return body

    async def _stream_back(
        self, request: web.BaseRequest, upstream: aiohttp.ClientResponse, call: CallRecord
    ) -> web.StreamResponse:
        call.status = upstream.status
        call.streamed = upstream.content_type == "text/event-stream"
        headers, length = client_headers(upstream)
        response_class = web.StreamResponse if call.streamed else _CoalescedResponse
        response = response_class(status=upstream.status, reason=upstream.reason, headers=headers)
        if length is not None:
            response.content_length = length
        await response.prepare(request)
        tail = UsageTail()
        try:
            await self._copy_body(request, upstream, response, call, tail)
        finally:
            # Also when the client hangs up right after the last event (SDKs close the
            # stream on `[DONE]`): the usage chunk has been forwarded, so count it.
            call.prompt_tokens, call.completion_tokens = tail.tokens()
        return response

    async def _copy_body(
        self,
        request: web.BaseRequest,
        upstream: aiohttp.ClientResponse,
        response: web.StreamResponse,
        call: CallRecord,
        tail: UsageTail,
    ) -> None:
        """Write each upstream chunk to the client as soon as it arrives."""
        while True:
            try:
                chunk = await upstream.content.readany()  # whatever arrived, no fixed size
            except (aiohttp.ClientError, TimeoutError) as exc:
                # Status and part of the body are already out: cut the connection so
                # the client sees a truncated response rather than a clean, short one.
                timed_out = isinstance(exc, TimeoutError)
                call.error = "upstream_read_timeout" if timed_out else "upstream_dropped"
                if request.transport is not None:
                    request.transport.abort()
                return
            if not chunk:
                break
            if call.ttfb is None:
                call.ttfb = time.perf_counter() - call.started
            call.bytes_out += len(chunk)
            tail.feed(chunk)
            try:
                await response.write(chunk)
            except ConnectionError:  # incl. aiohttp.ClientConnectionResetError
                call.error = "client_disconnected"
                return
        await response.write_eof()
