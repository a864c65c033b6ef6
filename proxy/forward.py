"""The request path: receive → check → forward → stream back → record.

One `Forwarder.handle` per /v1 call. It answers the checks it owns itself
(disabled, overloaded, no key, bad method or path, too large, too slow) with
OpenAI-shaped errors, asks the policy room (proxy.policy) whether the call may go
and for whom, otherwise sends the request upstream with the live key and copies
the response back chunk by chunk as the upstream produces it.
"""

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from functools import partial

import aiohttp
from aiohttp import web
from yarl import URL

from proxy import errors
from proxy.buffer_budget import BufferBudget
from proxy.egress import egress_proxy_for
from proxy.errors import ProxyError
from proxy.headers import client_headers, upstream_headers
from proxy.keysource import KeySource
from proxy.observability import CallRecord, EventLog, Metrics
from proxy.payload import SLICE_BYTES, SlicedPayload
from proxy.policy.caller import Admission
from proxy.policy.model_check import (
    THREAD_THRESHOLD,
    is_json_type,
    read_models,
    read_models_off_loop,
)
from proxy.policy.room import PolicyRoom
from proxy.relay import EventStreamResponse, copy_body, is_event_stream, relay_body
from proxy.routes import Route, classify
from proxy.settings import Settings
from proxy.stream_usage import with_usage
from proxy.target import ALLOWED_METHODS, UpstreamTarget, check_upstream
from proxy.usage import UsageTail

_ALLOWED_METHODS_TEXT = ", ".join(sorted(ALLOWED_METHODS))
# Refusals that mean the upstream gave no usable answer → CallRecord.upstream.
_UPSTREAM_FAILURES = {
    "upstream_timeout": "timeout",
    "upstream_unreachable": "unreachable",
    "upstream_bad_response": "bad_response",
}


class _CoalescedResponse(web.StreamResponse):
    """Headers leave with the first body chunk: one write instead of two.

    Used for everything but SSE, where the client should see the status at once
    (proxy.relay.EventStreamResponse: with the first event only if it came along).
    (`_send_headers_immediately` is aiohttp's own switch, off for web.Response.)
    """

    _send_headers_immediately = False


RATE_GRACE_SECONDS = 5.0  # a body may start slowly; after this it must keep the minimum rate


@dataclass(slots=True)
class BodyLimit:
    """How much of a request body may arrive, by when, and how fast (loop time).

    `due(received)` is when a body that has `received` bytes so far is too slow:
    the whole-body deadline, or earlier when it falls behind `min_rate` bytes/s
    after a grace of RATE_GRACE_SECONDS. A client trickling a byte at a time so
    holds its in-flight slot for seconds, not the whole body deadline.
    """

    max_bytes: int
    seconds: float
    deadline: float
    started: float = 0.0
    min_rate: float = 0.0  # bytes per second; 0 = only the deadline

    def due(self, received: int) -> float:
        if not self.min_rate:
            return self.deadline
        by_rate = self.started + RATE_GRACE_SECONDS + received / self.min_rate
        return min(self.deadline, by_rate)

    def too_slow(self, received: int) -> ProxyError:
        if self.due(received) < self.deadline:
            return errors.body_too_slow(self.min_rate, RATE_GRACE_SECONDS)
        return errors.body_timeout(self.seconds)


class _BodyBuffer:
    """One growing request body: size checked and memory reserved as bytes arrive.

    Nothing is reserved or allocated from the declared Content-Length: a client
    that declares 16 MiB and sends one byte holds one byte of the shared budget.
    """

    __slots__ = ("body", "limit", "reserve", "reserved")

    def __init__(self, limit: int, reserve: Callable[[int], None]) -> None:
        self.body = bytearray()
        self.reserved = 0
        self.limit = limit
        self.reserve = reserve

    def add(self, chunk: bytes) -> None:
        end = len(self.body) + len(chunk)
        if end > self.limit:
            raise errors.body_too_large(self.limit)
        if end > self.reserved:
            self.reserve(end - self.reserved)
            self.reserved = end
        self.body += chunk  # grows in place (realloc/mremap), no second copy at the end


async def read_bounded(
    content: aiohttp.StreamReader,
    limit: BodyLimit,
    reserve: Callable[[int], None],
) -> bytearray:
    """A whole body, refused with 413 past its size and 408 past its deadline or rate.

    Kept in one bytearray grown as chunks arrive (no list of chunks joined at the
    end): one copy of the body in memory, which aiohttp then sends as it is. A body
    that came in whole with its head (most JSON calls) is taken without a timer.
    """
    buffer = _BodyBuffer(limit.max_bytes, reserve)
    if content.is_eof():
        buffer.add(content.read_nowait())
        return buffer.body
    try:
        async with asyncio.timeout_at(limit.due(0)) as timer:
            while chunk := await content.readany():
                buffer.add(chunk)
                timer.reschedule(limit.due(len(buffer.body)))
    except TimeoutError:
        raise limit.too_slow(len(buffer.body)) from None
    return buffer.body


async def bounded_stream(
    content: aiohttp.StreamReader, limit: BodyLimit, call: CallRecord
) -> AsyncIterator[bytes]:
    """Pass a body (e.g. a file upload) through as it arrives, within its limits."""
    while True:
        try:
            async with asyncio.timeout_at(limit.due(call.bytes_in)):
                chunk = await content.readany()
        except TimeoutError:
            raise limit.too_slow(call.bytes_in) from None
        if not chunk:
            return
        call.bytes_in += len(chunk)
        if call.bytes_in > limit.max_bytes:
            raise errors.body_too_large(limit.max_bytes)
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
        # Identity plugs in as the room's caller check (set by ProxyState when it is on).
        self.policy = PolicyRoom.for_settings(settings)
        self.target = UpstreamTarget(check_upstream(settings.upstream))
        self.egress_proxy = egress_proxy_for(settings.upstream)
        self.in_flight = 0
        self.buffers = BufferBudget(settings.max_buffered_bytes)
        self.tasks: set[asyncio.Task[object]] = set()  # handlers running, cancelled at drain end
        self.stopping = False
        self._idle = asyncio.Event()
        self._idle.set()
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
        route = classify(request.method, request.path)
        call = CallRecord(request.method, request.path, route.label)
        if self.in_flight >= self.settings.max_in_flight:
            return self._answer(call, errors.overloaded(self.settings.max_in_flight))
        self.in_flight += 1
        self._idle.clear()
        task = asyncio.current_task()
        if task is not None:
            self.tasks.add(task)
        try:
            return await self._forward(request, call, route)
        except ProxyError as exc:
            call.status, call.error = exc.status, exc.code
            call.upstream = _UPSTREAM_FAILURES.get(exc.code, call.upstream)
            # Refused with part of the body unread: proxy.connections answers with
            # `Connection: close` and drops the rest unparsed (never inflated).
            return exc.to_response()
        except asyncio.CancelledError:
            call.error = "drain_timeout" if self.stopping else "client_disconnected"
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
            if call.buffered:
                self.buffers.give_back(call.buffered)
            if not self.in_flight:
                self._idle.set()
            if task is not None:
                self.tasks.discard(task)
            self._record(call)

    def _reserve(self, call: CallRecord, amount: int) -> None:
        self.buffers.take(call.buffered, amount)
        call.buffered += amount

    async def wait_idle(self) -> None:
        """Until nothing is in flight (drain puts a deadline around it)."""
        await self._idle.wait()

    def _answer(self, call: CallRecord, error: ProxyError) -> web.Response:
        call.status, call.error = error.status, error.code
        self._record(call)
        return error.to_response()

    def _record(self, call: CallRecord) -> None:
        duration = time.perf_counter() - call.started
        self.policy.charge(call)  # the usage is known now
        self.metrics.record(call, duration)
        self.log.call(call, duration)

    def _check_request(self, request: web.BaseRequest) -> URL:
        """Method and path; the upstream URL."""
        if request.method not in ALLOWED_METHODS:
            raise errors.method_not_allowed(_ALLOWED_METHODS_TEXT)
        return self.target.checked_url(request.rel_url)

    async def _forward(
        self, request: web.BaseRequest, call: CallRecord, route: Route
    ) -> web.StreamResponse:
        settings = self.settings
        if settings.disabled:
            raise errors.disabled()
        url = self._check_request(request)
        caller = self.policy.check(request, route)  # may it go: allowlist on path and query
        if caller is None:  # who calls, may they (401/403/429), and their app's models
            caller = await self.policy.identify(request, call, route)
        key = self.keys.current
        if key is None:
            raise errors.key_unavailable()
        body = await self._read_body(request, call, route, caller)
        if call.needs_usage and isinstance(body, bytearray):  # a stream reports its usage
            body = await with_usage(body, call, route.label, request.content_type)
        assert self.session is not None, "session opens at app startup"
        try:
            upstream = await self.session.request(
                request.method,
                url,
                headers=upstream_headers(request.headers, key.authorization),
                data=_payload(body),
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
        call.upstream = str(upstream.status)
        body = None  # sent: a stream held for minutes keeps no copy of its prompt
        try:
            # The body is copied from this frame, not a nested one: a held stream
            # waits in as few coroutine frames as can be.
            response, first = await self._answer_head(request, upstream, call, key.value)
            tail = UsageTail()
            try:
                copy = relay_body if call.streamed else copy_body
                await copy(request, upstream, response, call, tail, first)
            finally:
                # Also when the client hangs up right after the last event (SDKs close
                # the stream on `[DONE]`): the usage chunk has been forwarded, so count it.
                call.prompt_tokens, call.completion_tokens = tail.tokens()
        except BaseException:
            upstream.close()  # client gone or cancelled: drop the upstream request too
            raise
        if call.error:
            upstream.close()
        else:
            upstream.release()  # back to the pool for the next call
        return response

    async def _read_body(
        self, request: web.BaseRequest, call: CallRecord, route: Route, caller: Admission
    ) -> bytearray | AsyncIterator[bytes] | None:
        settings = self.settings
        # With an allowlist, any body sent to a policed path is read for models: a
        # GET/DELETE or a call on a stored object names none, but an upstream that
        # ignores the method would run the one its body names.
        rule = self.policy.body_rule(route, caller)
        length = request.content_length
        if length is not None and length > settings.max_body_bytes:
            raise errors.body_too_large(settings.max_body_bytes)
        if not request.body_exists:
            self.policy.check_no_body(rule)
            return None
        expect = request.headers.get("Expect", "")
        if expect.lower() == "100-continue" and request.version >= (1, 1):
            # curl asks for this before large uploads; the low-level server leaves it to us.
            await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        now = asyncio.get_running_loop().time()
        limit = BodyLimit(
            settings.max_body_bytes,
            settings.body_timeout,
            now + settings.body_timeout,
            now,
            settings.min_body_rate,
        )
        content_type = request.content_type
        if not is_json_type(content_type) and not rule.read:
            return bounded_stream(request.content, limit, call)
        # JSON, or a model call while an allowlist is set: read it (bounded) to find the model.
        body = await read_bounded(request.content, limit, partial(self._reserve, call))
        call.bytes_in = len(body)
        content_type_header = request.headers.get("Content-Type", "")
        tools = rule.restricted
        if len(body) < THREAD_THRESHOLD:  # cheaper than a thread hop (and a coroutine)
            found = read_models(content_type, content_type_header, body, tools)
        else:
            found = await read_models_off_loop(content_type, content_type_header, body, tools)
        self.policy.check_body(found, rule, caller, call)
        return body

    async def _answer_head(
        self,
        request: web.BaseRequest,
        upstream: aiohttp.ClientResponse,
        call: CallRecord,
        key: str,
    ) -> tuple[web.StreamResponse, bytes]:
        """The client's response, prepared, and the body's first chunk when it was read
        to answer cleanly. (Its head is sent; a stream's is sent by relay_body, at once or
        with the first event if that came with the upstream's head.)"""
        if upstream.status < 200:  # e.g. 101 Switching Protocols: nothing to copy back
            raise errors.upstream_protocol(f"status {upstream.status}")
        streamed = is_event_stream(upstream.headers.get("Content-Type", ""))
        # Not a stream: read the first chunk before answering, so an upstream that fails
        # at once (undecodable gzip, drop) still gets a clean 502 instead of a cut reply.
        first = b"" if streamed else await _first_chunk(upstream)
        call.status = upstream.status
        call.streamed = streamed
        headers, length = client_headers(upstream, key)
        response_class = EventStreamResponse if streamed else _CoalescedResponse
        response = response_class(status=upstream.status, reason=upstream.reason, headers=headers)
        if length is not None:
            response.content_length = length
        if not request.content.is_eof():  # answered mid-upload: the rest is not read
            response.force_close()
        await response.prepare(request)
        return response, first


def _payload(
    body: bytearray | AsyncIterator[bytes] | None,
) -> bytearray | SlicedPayload | AsyncIterator[bytes] | None:
    """Large buffered bodies go out in slices; a small one in aiohttp's single write."""
    if isinstance(body, bytearray) and len(body) > SLICE_BYTES:
        return SlicedPayload(body)
    return body


async def _first_chunk(upstream: aiohttp.ClientResponse) -> bytes:
    """The first body chunk, or the error to answer with while nothing is sent yet."""
    try:
        return await upstream.content.readany()
    except TimeoutError as exc:
        raise errors.upstream_timeout("read") from exc
    except aiohttp.ClientPayloadError as exc:
        raise errors.upstream_protocol("a body it could not decode") from exc
    except aiohttp.ClientError as exc:
        raise errors.upstream_unreachable(type(exc).__name__) from exc
