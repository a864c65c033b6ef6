"""Per-connection guards aiohttp's low-level server does not have.

- Header timeout: a connection that has not sent a complete request head within
  `header_timeout` of connecting (or of going idle between keep-alive requests)
  is closed, so slowloris clients cannot pile up open connections.
- Parse errors are answered OpenAI-shaped, without quoting the offending input
  (aiohttp's own error page is text/plain and echoes the bad header line).

Both hook into aiohttp's RequestHandler (the protocol object per connection); the
private attributes used are named where they are read.
"""

import asyncio
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from proxy import errors


class GuardedRequestHandler(RequestHandler):
    """aiohttp's protocol, plus a deadline for each request head.

    The deadline costs no timer per request: a head that begins only notes the loop
    time; one timer per connection, armed when none is pending, checks on firing
    whether the pending head is overdue, and if not, re-arms for when it would be.
    """

    __slots__ = ("_head_since", "_head_timeout", "_head_timer")

    def __init__(self, manager: web.Server, *, head_timeout: float, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._head_timeout = head_timeout
        self._head_timer: asyncio.TimerHandle | None = None
        self._head_since: float | None = None  # loop time the pending head began

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._head_began()

    def data_received(self, data: bytes) -> None:
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
        super().connection_lost(exc)

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
