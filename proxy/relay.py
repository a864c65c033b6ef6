"""The event-stream relay: each upstream chunk goes to the client from the socket callback.

Copying a stream with `await upstream.content.readany()` / `await response.write()`
costs a task wake-up, a future and aiohttp's writer path for every chunk, and a chunk
of a token stream is ~200 bytes: that per-chunk overhead, not the bytes, is what a
worker holding a thousand streams spends its core on. So for the body of an SSE
response the proxy puts a thin protocol (`_Tap`) in front of the upstream
connection's own aiohttp protocol: aiohttp still parses and (if needed) decompresses
every byte, exactly as before, and right after it has, the tap takes what the parser
produced (`StreamReader.read_nowait`) and writes it to the client, framed as one HTTP
chunk, in the same callback. No buffering: first byte and each chunk leave as they
arrive. The handler task sleeps in `StreamReader.wait_eof()` until the stream ends,
the upstream fails (aiohttp's read timeout and connection loss land there as they do
for `readany`), or the client goes away (the tap sets an exception there).

Back-pressure: when the client's transport passes its high-water mark (it then
pauses aiohttp's server protocol: `writing_paused`), the tap stops reading the
upstream and a short-lived task awaits the writer's `drain()` before reading again,
so a slow client holds at most the transport's high-water mark plus one upstream read.
"""

import asyncio
import contextlib
import time
from typing import Any

import aiohttp
from aiohttp import web

from proxy.observability import CallRecord
from proxy.usage import UsageTail


class ClientGone(ConnectionError):
    """The client's connection closed while its stream was being relayed."""


class _Tap(asyncio.Protocol):
    """Stands in for the upstream connection's protocol while a stream body is relayed."""

    __slots__ = (
        "call", "client", "handler", "paused", "reader", "request", "resuming", "tail", "upstream",
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
        self.paused = False
        self.resuming: asyncio.Task[None] | None = None

    # The upstream transport's callbacks: aiohttp's protocol sees every one of them.
    def data_received(self, data: bytes) -> None:
        self.handler.data_received(data)
        self.pump()

    def eof_received(self) -> bool | None:
        result: bool | None = self.handler.eof_received()
        return result

    def connection_lost(self, exc: Exception | None) -> None:
        self.handler.connection_lost(exc)

    def pause_writing(self) -> None:
        self.handler.pause_writing()

    def resume_writing(self) -> None:
        self.handler.resume_writing()

    def pump(self) -> None:
        """Send the client whatever aiohttp's parser has produced so far.

        A loop: taking data may let a paused decompressor produce more at once.
        """
        reader = self.reader
        client = self.client
        call = self.call
        while reader.exception() is None and (chunk := reader.read_nowait()):
            if client.is_closing():
                reader.set_exception(ClientGone())
                return
            if call.ttfb is None:
                call.ttfb = time.perf_counter() - call.started
            call.bytes_out += len(chunk)
            self.tail.feed(chunk)
            client.write(b"%x\r\n%b\r\n" % (len(chunk), chunk))
            if self.request.protocol.writing_paused and not self.paused:
                self.paused = True
                self.handler.pause_reading()  # also stops aiohttp's read timeout: ours
                self.resuming = asyncio.ensure_future(self._resume_when_drained())
                return

    async def _resume_when_drained(self) -> None:
        with contextlib.suppress(ConnectionError):  # the next pump sees it closing
            await self.request.writer.drain()
        self.paused = False
        self.handler.resume_reading()
        self.pump()

    def release(self) -> None:
        """Give the upstream connection back to aiohttp's protocol, reading again."""
        if self.resuming is not None:
            self.resuming.cancel()
        if self.paused:
            self.paused = False
            self.handler.resume_reading()
        if self.upstream.get_protocol() is self:
            self.upstream.set_protocol(self.handler)


def can_relay(request: web.BaseRequest, response: web.StreamResponse) -> bool:
    """A prepared response the tap can frame itself: HTTP/1.1 chunked, nothing in between."""
    return (
        request.transport is not None
        and request.version >= (1, 1)
        and response.headers.get("Transfer-Encoding") == "chunked"
        and "Content-Encoding" not in response.headers
    )


async def relay(
    request: web.BaseRequest,
    upstream: aiohttp.ClientResponse,
    call: CallRecord,
    tail: UsageTail,
) -> bool:
    """Relay the rest of `upstream`'s body to the client; False if it cannot (caller copies).

    Raises what the upstream side raised (aiohttp.ClientError, TimeoutError), or
    ClientGone; the caller turns those into the call's error, as for the copy loop.
    """
    connection = upstream.connection
    client = request.transport
    if connection is None or connection.transport is None or client is None:
        return False
    transport = connection.transport
    handler = connection.protocol
    tap = _Tap(handler, transport, upstream.content, request, client, call, tail)
    transport.set_protocol(tap)
    reader = upstream.content
    try:
        tap.pump()  # what came with the head, before the tap was in place
        while (exc := reader.exception()) is None and not reader.is_eof():
            await reader.wait_eof()
        if exc is not None:
            raise exc
        tap.pump()
    finally:
        tap.release()
    return True


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
    response rather than a clean, short one.
    """
    if call.streamed and not first and can_relay(request, response):
        try:
            relayed = await relay(request, upstream, call, tail)
        except ClientGone:
            call.error = "client_disconnected"
            return
        except (aiohttp.ClientError, TimeoutError) as exc:
            _cut(request, call, exc)
            return
        if relayed:
            await response.write_eof()
            return
    await copy_body(request, upstream, response, call, tail, first)


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
    while True:
        if chunk:
            if call.ttfb is None:
                call.ttfb = time.perf_counter() - call.started
            call.bytes_out += len(chunk)
            tail.feed(chunk)
            try:
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
    await response.write_eof()
