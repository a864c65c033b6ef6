"""The event-stream relay: each upstream chunk goes to the client from the socket callback.

Copying a stream with `await upstream.content.readany()` / `await response.write()`
costs a task wake-up, a future, StreamReader's buffer and aiohttp's writer path for
every chunk, and a chunk of a token stream is ~200 bytes: that per-chunk overhead,
not the bytes, is what a worker holding a thousand streams spends its core on.

So for the body of an SSE response the proxy keeps aiohttp's parser (llhttp, and its
decompressor) and changes where the parsed bytes go. The response's StreamReader
becomes a `_SinkReader` (same object, a method-only subclass) whose `feed_data`
puts each parsed piece in the stream's `_Tap`'s list; what one upstream read produced
goes to the client's transport framed as one HTTP chunk, in the same callback: no
buffer, no task switch; the first byte and each chunk leave as they arrive. The tap
stands in front of the upstream connection's aiohttp protocol
(`transport.set_protocol`): it hands each read to aiohttp's parser and notes when
data last came.

Per chunk, with a thousand streams held, what costs is less the code than the memory
it touches (each stream's objects are cold in the CPU's caches by its next chunk): the
relay touches the two transports, the tap, the parser, the reader and the usage tail,
and counts bytes in the tap until the stream ends. The handler task sleeps in
`StreamReader.wait_eof()` until the stream ends, the upstream fails (connection loss
lands there as for `readany`), the upstream is silent past the read timeout, or the
client goes away (the tap sets an exception there). Afterwards the reader, protocol
and timeout are put back, so the connection returns to aiohttp's pool as it came.

Back-pressure: when the client's transport passes its high-water mark (it then
pauses aiohttp's server protocol: `writing_paused`), the tap pauses aiohttp's
upstream protocol, which stops the parser and the socket (as StreamReader itself does
when its buffer is full), and a short-lived task awaits the writer's `drain()`
before reading again: a slow client holds the transport's high-water mark plus at
most one upstream read.

The read timeout is the tap's: one sweep per second over the streams being relayed
(`_Sweeper`) instead of aiohttp's timer re-made for every chunk, or even a timer
per stream (a timer handle is ~0.5 KiB, a thousand streams hold a thousand).

Memory per held stream: while the tap has the body, what a held stream would keep
but never use is let go and put back at release: the body reader's empty deque and
chunk-boundary deque, the request body reader's empty deque, the upstream protocol's
empty queue of responses (~0.6 KiB each), and the client connection's idle timers and
empty queue of requests (proxy.connections puts them back when needed).
"""

import asyncio
import collections
import contextlib
import time
from collections.abc import Callable
from typing import Any, cast

import aiohttp
from aiohttp import web
from aiohttp.client_proto import ResponseHandler

from proxy.connections import GuardedRequestHandler
from proxy.observability import CallRecord
from proxy.stream_usage import UsageOnlyFilter
from proxy.usage import UsageTail


class ClientGone(ConnectionError):
    """The client's connection closed while its stream was being relayed."""


class EventStreamResponse(web.StreamResponse):
    """An event stream's response whose head waits in aiohttp's writer for the relay.

    The relay sends it in one write with the body bytes that came in the same upstream
    read as the upstream's head (usually the first event), or alone at once when none
    did: it never waits for the upstream. (`_send_headers_immediately` is aiohttp's own
    switch, off for web.Response.)
    """

    _send_headers_immediately = False


class _SinkReader(aiohttp.StreamReader):
    """A StreamReader whose parsed body goes to its tap instead of its buffer.

    No slots of its own, so an existing StreamReader can become one and back again.
    While it is one, its `_buffer` is the tap's list of pieces not yet written.
    """

    __slots__ = ()

    def feed_data(self, data: bytes, size: int = 0) -> bool:
        self._buffer.append(data)  # written by the tap when the parser returns
        return False  # (nothing held back: the parser need not call again)

    # Chunk boundaries are only kept for readchunk(), which nothing calls while relaying.
    # The parser calls these for every chunk: `bool` does nothing at C speed, where a
    # method would cost a Python frame each time.
    begin_http_chunk_receiving = end_http_chunk_receiving = cast(Callable[[], None], bool)


SWEEP_SECONDS = 1.0
# Stands in for an idle reader's empty deque (~0.6 KiB) while a stream is relayed: the
# body's reader gets nothing (feed_data goes to the tap), the request's has its whole
# body. Immutable, so a stray append fails loudly instead of sharing data.
_NO_BUFFER: Any = ()


def _drop_buffer(queue: aiohttp.StreamReader | ResponseHandler) -> bool:
    """Free an empty reader's (or message queue's) deque until _restore_buffer.

    False if it is in use.
    """
    if queue._buffer:
        return False
    queue._buffer = _NO_BUFFER
    return True


def _lend(reader: aiohttp.StreamReader, pending: list[bytes]) -> None:
    """The tap's list stands in for the reader's deque: feed_data only appends to it."""
    reader._buffer = cast("collections.deque[bytes]", pending)


def _take_back(reader: aiohttp.StreamReader, pending: list[bytes]) -> None:
    if cast(object, reader._buffer) is pending:
        reader._buffer = collections.deque()


def _restore_buffer(queue: aiohttp.StreamReader | ResponseHandler) -> None:
    if queue._buffer is _NO_BUFFER:
        queue._buffer = collections.deque()


class _Sweeper:
    """Cuts the relayed streams whose upstream has been silent past their read timeout.

    One timer per event loop while any stream is relayed; a timeout fires up to
    SWEEP_SECONDS late, like a timer re-armed lazily would.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.taps: set[_Tap] = set()
        self.timer: asyncio.TimerHandle | None = None

    def add(self, tap: "_Tap") -> None:
        self.taps.add(tap)
        if self.timer is None:
            self.timer = self.loop.call_later(self._period(), self.sweep)

    def _period(self) -> float:
        return min([SWEEP_SECONDS, *(t.timeout for t in self.taps if t.timeout)])

    def sweep(self) -> None:
        self.timer = None
        now = self.loop.time()
        for tap in list(self.taps):
            tap.check_idle(now)
        if self.taps:
            self.timer = self.loop.call_later(self._period(), self.sweep)
        else:
            _SWEEPERS.pop(self.loop, None)

    @staticmethod
    def discard(tap: "_Tap") -> None:
        found = _SWEEPERS.get(tap.loop)
        if found is not None:
            found.taps.discard(tap)


_SWEEPERS: dict[asyncio.AbstractEventLoop, _Sweeper] = {}


def _sweeper(loop: asyncio.AbstractEventLoop) -> _Sweeper:
    found = _SWEEPERS.get(loop)
    if found is None:
        found = _SWEEPERS[loop] = _Sweeper(loop)
    return found


def _become(reader: aiohttp.StreamReader, kind: type[aiohttp.StreamReader]) -> None:
    """Switch a reader between StreamReader and _SinkReader (same layout, no copy)."""
    reader.__class__ = kind


class _Tap(asyncio.Protocol):
    """Stands in for the upstream connection's protocol while a stream body is relayed."""

    __slots__ = (
        "body", "call", "client", "filter", "handler", "head", "held", "last", "loop", "parse",
        "paused", "pending", "protocol", "reader", "received", "request", "resuming", "sent",
        "splits", "tail", "timeout", "upstream", "waiting",
    )  # fmt: skip

    def __init__(
        self,
        handler: Any,
        upstream: asyncio.Transport,
        reader: aiohttp.StreamReader,
        request: web.BaseRequest,
        client: asyncio.Transport,
        call: CallRecord,
        tail: UsageTail,
    ) -> None:
        self.handler, self.upstream, self.reader = handler, upstream, reader
        self.request, self.client, self.call, self.tail = request, client, call, tail
        self.protocol = request.protocol  # the client connection's aiohttp protocol
        self.parse = handler._parser.feed_data  # the response's parser, set up by aiohttp
        self.loop = asyncio.get_running_loop()
        self.paused = False
        self.pending: list[bytes] = []  # parsed pieces of one upstream read, not yet written
        # Counted here, where each chunk already is, and handed over at release: per chunk
        # the relay touches its transports, itself, the parser, the reader and the tail.
        self.received = self.sent = 0  # body bytes from upstream, to the client
        self.waiting = True  # for the first byte (the call's ttfb)
        self.held = b""  # the body's last bytes, sent by finish() with its end
        self.head = b""  # the response head, while it waits to leave with the first bytes
        self.resuming: asyncio.Task[None] | None = None
        self.timeout: float | None = handler.read_timeout
        self.last = self.loop.time()
        self.body: aiohttp.StreamReader | None = None  # the request's, its deque dropped
        self.splits = False  # the reader kept chunk boundaries before the tap took over
        # Set when the proxy asked for usage the client did not: takes it out again.
        self.filter = UsageOnlyFilter() if call.hide_usage else None

    def start(self) -> None:
        """Take over: what is buffered goes out now, the rest as the parser produces it."""
        reader = self.reader
        buffered = reader.read_nowait() if reader.exception() is None else b""
        self.handler.read_timeout = None  # aiohttp's per-chunk timer off: ours below
        self.handler.start_timeout()  # (with none set, this cancels the one pending)
        if self.timeout:
            _sweeper(self.loop).add(self)
        self.upstream.set_protocol(self)
        _become(reader, _SinkReader)
        if not reader._buffer:  # (emptied above, unless the body has already failed)
            _lend(reader, self.pending)
        _drop_buffer(self.handler)  # its queue of responses: none comes mid-body
        # Chunk boundaries (a deque, ~0.6 KiB) are not kept while the tap has the body.
        self.splits = reader._http_chunk_splits is not None
        reader._http_chunk_splits = None
        if isinstance(self.protocol, GuardedRequestHandler):
            self.protocol.release_idle()
        body = self.request.content
        if type(body) is aiohttp.StreamReader and body.is_eof() and _drop_buffer(body):
            self.body = body
        # The client's head leaves with the bytes that came with the upstream's head, if
        # any (send() puts it in front of them), else alone, now: never with a later read.
        self.head = _take_head(self.request.writer)
        if buffered:
            self.pending.append(buffered)
            self.flush()
        if self.head and not self.client.is_closing():
            self.client.write(self.head)
        self.head = b""

    # The upstream transport's callbacks. A read goes to aiohttp's parser (llhttp, in C)
    # directly, not through its protocol's data_received, whose work (timers, messages
    # of a response still to come) does not apply mid-body; the rest go through it.
    def data_received(self, data: bytes) -> None:
        self.last = self.loop.time()
        try:
            messages, upgraded, _ = self.parse(data)
        except Exception as exc:
            self._malformed(exc)
        else:
            if messages or upgraded:
                # A response after this one, which nobody asked for: the connection is
                # not used again (aiohttp's protocol would queue it, with the same end).
                self.upstream.close()
        pending = self.pending
        if pending:  # what this read carried, to the client as one HTTP chunk
            body = pending[0] if len(pending) == 1 else b"".join(pending)
            pending.clear()
            # (`_eof`: the body ended in this read; read without a method call per chunk)
            self.send(body, last=self.reader._eof)

    def _malformed(self, exc: Exception) -> None:
        """Broken framing mid-body: the upstream connection is dropped, the stream cut."""
        self.upstream.close()
        self.handler.set_exception(exc)
        if self.reader.exception() is None and not self.reader.is_eof():
            self.reader.set_exception(aiohttp.ClientPayloadError(type(exc).__name__))

    def eof_received(self) -> bool | None:
        result: bool | None = self.handler.eof_received()
        self.flush()
        return result

    def connection_lost(self, exc: Exception | None) -> None:
        self.handler.connection_lost(exc)
        self.flush()
        reader = self.reader
        failed = self.handler.exception()
        if failed is not None and reader.exception() is None and not reader.is_eof():
            # aiohttp 3.14 closes the connection on a parse error mid-body (broken chunk
            # framing) but fails only its protocol, not the body's reader: without this
            # the stream would hang until the read timeout instead of being cut now.
            reader.set_exception(aiohttp.ClientPayloadError(type(failed).__name__))

    def pause_writing(self) -> None:
        self.handler.pause_writing()

    def resume_writing(self) -> None:
        self.handler.resume_writing()

    def flush(self) -> None:
        """What the parser produced outside a read (after a pause, at the end), sent."""
        pending = self.pending
        if pending:
            body = pending[0] if len(pending) == 1 else b"".join(pending)
            pending.clear()
            self.send(body)

    def send(self, body: bytes, last: bool = False) -> None:
        """One upstream read's body, to the client as one HTTP chunk (one write).

        Usually one SSE event; a burst that arrived together (the last events and
        `[DONE]`) leaves together, as the copy loop's readany() would have joined it.
        The `last` one, read with the body's end, is held for `finish()`: it then leaves
        with the end-of-body marker in one write, as aiohttp's write_eof(data) sends it.
        """
        self.received += len(body)
        if self.waiting:
            self.waiting = False
            self.call.ttfb = time.perf_counter() - self.call.started
        self.tail.feed(body)
        if self.filter is not None:
            body = self.filter.feed(body)
            if not body:
                return
        self.sent += len(body)
        if last:
            self.held += body
            return
        client = self.client
        if client.is_closing():
            if self.reader.exception() is None:
                self.reader.set_exception(ClientGone())
            return
        frame = b"%x\r\n%b\r\n" % (len(body), body)
        if self.head:
            frame, self.head = self.head + frame, b""
        client.write(frame)
        if (
            client.get_write_buffer_size()  # (0 whenever the write went out whole)
            and self.protocol.writing_paused
            and not self.paused
            and not self.reader.is_eof()
        ):
            # (At eof there is nothing left to hold back, and aiohttp's parser has let go
            # of the body: write_eof then waits for the client instead.)
            self.paused = True
            self.handler.pause_reading()  # the parser and the socket stop here
            self.resuming = asyncio.ensure_future(self._resume_when_drained())

    def finish(self) -> bytes:
        """The body's last bytes, for `response.write_eof()` to send with the end marker:
        those read with the end, and what a filter still holds."""
        if self.filter is not None and (rest := self.filter.finish()):
            self.sent += len(rest)
            self.held += rest
        return self.held

    async def _resume_when_drained(self) -> None:
        with contextlib.suppress(ConnectionError):  # the next send sees it closing
            await self.request.writer.drain()
        self.paused = False
        self.last = self.loop.time()
        self.handler.resume_reading()  # parses what it held back; more reads follow
        self.flush()

    def check_idle(self, now: float) -> None:
        """Cut the stream if the upstream has sent nothing for `timeout` seconds."""
        if self.paused:  # waiting for a slow client is not the upstream's silence
            self.last = now
        elif self.timeout and now - self.last >= self.timeout:
            _Sweeper.discard(self)
            if self.reader.exception() is None and not self.reader.is_eof():
                self.reader.set_exception(aiohttp.SocketTimeoutError("upstream silent"))

    def release(self) -> None:
        """Give reader, timeout and connection back to aiohttp, reading again."""
        _become(self.reader, aiohttp.StreamReader)
        _take_back(self.reader, self.pending)
        self.reader.total_bytes += self.received
        self.call.bytes_out += self.sent
        _restore_buffer(self.handler)
        if self.splits and self.reader._http_chunk_splits is None:
            self.reader._http_chunk_splits = collections.deque()
        if self.body is not None:
            _restore_buffer(self.body)
        _Sweeper.discard(self)
        if self.resuming is not None:
            self.resuming.cancel()
        self.handler.read_timeout = self.timeout
        if self.paused:
            self.paused = False
            self.handler.resume_reading()
        if self.upstream.get_protocol() is self:
            self.upstream.set_protocol(self.handler)


def _take_head(writer: Any) -> bytes:
    """The response head aiohttp's writer still holds (see EventStreamResponse), taken
    out for the relay to send, as `send_headers()` would, in the same write as the body."""
    head: bytes | None = writer._headers_buf
    if not head or writer._headers_written:
        return b""
    writer._headers_buf, writer._headers_written = None, True
    writer.output_size += len(head)
    return head


def is_event_stream(content_type: str) -> bool:
    """`text/event-stream`, parameters or not, without keeping a parsed copy per response."""
    return content_type.partition(";")[0].strip().lower() == "text/event-stream"


def can_relay(request: web.BaseRequest, response: web.StreamResponse) -> bool:
    """A prepared response the tap can frame itself: HTTP/1.1 chunked, nothing in between."""
    return (
        request.transport is not None
        and request.version >= (1, 1)
        and response.headers.get("Transfer-Encoding") == "chunked"
        and "Content-Encoding" not in response.headers
    )


def tap_for(
    request: web.BaseRequest,
    upstream: aiohttp.ClientResponse,
    call: CallRecord,
    tail: UsageTail,
) -> _Tap | None:
    """A tap for the rest of `upstream`'s body, or None if it cannot (the caller copies)."""
    connection = upstream.connection
    client = request.transport
    if connection is None or connection.transport is None or client is None:
        return None
    if type(upstream.content) is not aiohttp.StreamReader:  # e.g. no body at all
        return None
    if getattr(connection.protocol, "_parser", None) is None:  # an aiohttp without one
        return None
    return _Tap(
        connection.protocol, connection.transport, upstream.content, request, client, call, tail
    )


async def relay_body(
    request: web.BaseRequest,
    upstream: aiohttp.ClientResponse,
    response: web.StreamResponse,
    call: CallRecord,
    tail: UsageTail,
    first: bytes,
) -> None:
    """The rest of the body after `first`: relayed for an event stream, else copied.

    A cut sets `call.error` (the caller then drops the upstream connection); after a
    failure upstream the client's connection is aborted, so the client sees a truncated
    response rather than a clean, short one. (One coroutine for both, waiting in place:
    a held stream keeps one frame less.)
    """
    tap = None
    if call.streamed and not first and can_relay(request, response):
        tap = tap_for(request, upstream, call, tail)
    if tap is None:
        request.writer.send_headers()  # (an EventStreamResponse's: now, not with a chunk)
        await copy_body(request, upstream, response, call, tail, first)
        return
    reader = upstream.content
    try:
        tap.start()
        # Until the end of the body, an upstream failure or the client gone (the tap
        # sets those on the reader); the upstream side raises aiohttp.ClientError or
        # TimeoutError, as for the copy loop.
        while (exc := reader.exception()) is None and not reader.is_eof():
            await reader.wait_eof()
        if exc is not None:
            raise exc
        last = tap.finish()
    except ClientGone:
        call.error = "client_disconnected"
        return
    except (aiohttp.ClientError, TimeoutError) as exc:
        _cut(request, call, exc)
        return
    finally:
        tap.release()
    try:
        await response.write_eof(last)  # one write: the last bytes and the end marker
    except ConnectionError:  # incl. aiohttp.ClientConnectionResetError
        call.error = "client_disconnected"


def _cut(request: web.BaseRequest, call: CallRecord, exc: BaseException) -> None:
    call.error = "upstream_read_timeout" if isinstance(exc, TimeoutError) else "upstream_dropped"
    if request.transport is not None:
        request.transport.abort()


async def copy_body(
    request: web.BaseRequest,
    upstream: aiohttp.ClientResponse,
    response: web.StreamResponse,
    call: CallRecord,
    tail: UsageTail,
    chunk: bytes,
) -> None:
    """Write each upstream chunk to the client as soon as it arrives (any body)."""
    hidden = UsageOnlyFilter() if call.hide_usage and call.streamed else None
    while True:
        if chunk:
            if call.ttfb is None:
                call.ttfb = time.perf_counter() - call.started
            tail.feed(chunk)
            if hidden is not None:
                chunk = hidden.feed(chunk)
            call.bytes_out += len(chunk)
            try:
                if chunk:
                    await response.write(chunk)
            except ConnectionError:  # incl. aiohttp.ClientConnectionResetError
                call.error = "client_disconnected"
                return
        try:
            chunk = await upstream.content.readany()  # whatever arrived, no fixed size
        except (aiohttp.ClientError, TimeoutError) as exc:
            _cut(request, call, exc)
            return
        if not chunk:
            break
    if hidden is not None and (rest := hidden.finish()):
        call.bytes_out += len(rest)
        try:
            await response.write(rest)
        except ConnectionError:
            call.error = "client_disconnected"
            return
    await response.write_eof()
