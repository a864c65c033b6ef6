"""Per-connection guards aiohttp's low-level server does not have.

- Header timeout: a connection that has not sent a complete request head within
  `header_timeout` of connecting (or of going idle between keep-alive requests)
  is closed, so slowloris clients cannot pile up open connections.
- Parse errors are answered OpenAI-shaped, without quoting the offending input
  (aiohttp's own error page is text/plain and echoes the bad header line).
- No answer leaves an unread body behind: one sent before its request body has
  fully arrived (a refusal, /healthz, a 404, the overload 503, ...) says
  `Connection: close`; the rest of the body is then dropped unparsed (so never
  inflated) for at most LINGER_SECONDS while the client takes the answer, and the
  connection closes. aiohttp's own lingering read, which parses and inflates what
  it discards on the event loop, is switched off (lingering_time=0).

Both hook into aiohttp's RequestHandler (the protocol object per connection); the
private attributes used are named where they are read.
"""

import asyncio
import collections
import contextlib
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from proxy import errors

LINGER_SECONDS = 2.0  # after an answer that left a body unread: raw discard, then close
# Stands in for an idle connection's empty queue of requests while a stream is relayed;
# immutable, so a stray append fails loudly (data_received puts a deque back first).
_NO_QUEUE: Any = ()


class GuardedRequestHandler(RequestHandler):
    """aiohttp's protocol, plus a deadline for each request head.

    The deadline costs no timer per request: a head that begins only notes the loop
    time; one timer per connection, armed when none is pending, checks on firing
    whether the pending head is overdue, and if not, re-arms for when it would be.
    """

    __slots__ = ("_gone", "_head_since", "_head_timeout", "_head_timer")

    def __init__(self, manager: web.Server, *, head_timeout: float, **kwargs: Any) -> None:
        super().__init__(manager, lingering_time=0, **kwargs)
        self._head_timeout = head_timeout
        self._head_timer: asyncio.TimerHandle | None = None
        self._head_since: float | None = None  # loop time the pending head began
        self._gone: asyncio.Future[None] | None = None  # set when the connection is lost

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._head_began()

    def data_received(self, data: bytes) -> None:
        if self._messages is _NO_QUEUE:  # dropped by release_idle(): a request may follow
            self._messages = collections.deque()
        parsed = self._request_count  # aiohttp counts each complete request head
        super().data_received(data)
        if self._request_count != parsed:
            self._head_since = None
        elif self._head_since is None and self._waiter is not None:
            # Idle on a kept-alive connection, and the next head has begun: time it.
            self._head_began()

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        if self._gone is not None and not self._gone.done():
            self._gone.set_result(None)
        super().connection_lost(exc)

    async def finish_response(
        self, request: web.BaseRequest, resp: web.StreamResponse, start_time: float | None
    ) -> tuple[web.StreamResponse, bool]:
        """Send the answer; if the request body has not all arrived, close after it."""
        unread = not request.content.is_eof()
        if unread and not resp.prepared:
            resp.force_close()  # `Connection: close`: the client sends nothing more here
        result = await super().finish_response(request, resp, start_time)
        if unread:
            await self._discard_and_close()
        return result

    async def _discard_and_close(self) -> None:
        """Drop the rest of the body unparsed for a bounded time, then close.

        Closing at once with unread bytes in the socket would send a reset that can
        destroy the answer before the client reads it; parsing the rest (aiohttp's
        lingering read) would inflate a compressed body on the loop. So: stop
        parsing (`close()` makes data_received drop everything), half-close so the
        client sees the answer end, and read-and-drop until the client closes or
        LINGER_SECONDS pass.
        """
        self.close()
        transport = self.transport
        if transport is None:
            return
        self._gone = asyncio.get_running_loop().create_future()
        self._reading_paused = self._buffer_paused = False
        self._resume_transport_reading()
        with contextlib.suppress(OSError, RuntimeError):
            if transport.can_write_eof():
                transport.write_eof()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._gone), LINGER_SECONDS)
        self.force_close()

    def release_idle(self) -> None:
        """A long response (a relayed stream) starts: free what it would keep unused.

        Each connection otherwise holds two timer handles (~0.9 KiB) and an empty queue
        of requests (~0.6 KiB) for the whole stream: this head timer, armed until it
        fires, and aiohttp's keep-alive timer, re-armed lazily. All come back when
        needed: the head timer when the next head begins, aiohttp's keep-alive timer
        when the response ends (it arms one if none), the queue when bytes arrive.
        """
        if not self._messages:
            self._messages = _NO_QUEUE
        if self._head_timer is not None and self._head_since is None:
            self._head_timer.cancel()
            self._head_timer = None
        if self._keepalive_handle is not None:
            self._keepalive_handle.cancel()
            self._keepalive_handle = None

    def _head_began(self) -> None:
        loop = asyncio.get_running_loop()
        self._head_since = loop.time()
        if self._head_timer is None:
            self._head_timer = loop.call_at(self._head_since + self._head_timeout, self._check)

    def _check(self) -> None:
        self._head_timer = None
        since = self._head_since
        if since is None:
            return  # no head pending: the next one to begin arms the timer again
        due = since + self._head_timeout
        loop = asyncio.get_running_loop()
        if loop.time() >= due:
            self.force_close()
        else:
            self._head_timer = loop.call_at(due, self._check)

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        """An OpenAI-shaped answer that never repeats what the client sent."""
        if request.writer.output_size > 0:
            raise ConnectionError("response already started")
        error = errors.internal() if status >= 500 else errors.bad_http(status)
        response = error.to_response()
        response.force_close()
        return response


class GuardedServer(web.Server):
    """web.Server whose connections get GuardedRequestHandler."""

    def __init__(self, *args: Any, head_timeout: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_timeout = head_timeout

    def __call__(self) -> RequestHandler:
        return GuardedRequestHandler(
            self, loop=self._loop, head_timeout=self._head_timeout, **self._kwargs
        )
