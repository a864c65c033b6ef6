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
    """aiohttp's protocol, plus a deadline for each request head."""

    __slots__ = ("_head_timeout", "_head_timer")

    def __init__(self, manager: web.Server, *, head_timeout: float, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._head_timeout = head_timeout
        self._head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        parsed = self._request_count  # aiohttp counts each complete request head
        super().data_received(data)
        if self._request_count != parsed:
            self._disarm()
        elif self._head_timer is None and self._waiter is not None:
            # Idle on a kept-alive connection, and the next head has begun: time it.
            self._arm()

    def connection_lost(self, exc: BaseException | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        loop = asyncio.get_running_loop()
        self._head_timer = loop.call_later(self._head_timeout, self._head_too_slow)

    def _disarm(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_too_slow(self) -> None:
        self._head_timer = None
        self.force_close()

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
