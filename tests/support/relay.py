"""An aiohttp server handler that relays an upstream stream as the proxy does."""

from collections.abc import Awaitable, Callable

import aiohttp
from aiohttp import web

from proxy.observability import CallRecord
from proxy.relay import EventStreamResponse, relay_body
from proxy.usage import UsageTail

Handler = Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]


def relay_handler(
    open_upstream: Callable[[], Awaitable[aiohttp.ClientResponse]],
    calls: list[CallRecord],
    on_request: Callable[[web.BaseRequest], None] | None = None,
    hide_usage: bool = False,
) -> Handler:
    """Each request: open the upstream, answer with the proxy's stream response and
    relay the body with proxy.relay.relay_body; each call's record goes to `calls`.
    `on_request` sees the request first (e.g. to watch its transport); `hide_usage`:
    as when the proxy asked for usage the client did not."""

    async def handler(request: web.BaseRequest) -> web.StreamResponse:
        if on_request is not None:
            on_request(request)
        call = CallRecord(
            request.method, request.path, "stream", streamed=True, hide_usage=hide_usage
        )
        calls.append(call)
        upstream = await open_upstream()
        response = EventStreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        tail = UsageTail()
        await relay_body(request, upstream, response, call, tail, b"")
        call.prompt_tokens, call.completion_tokens = tail.tokens()
        upstream.release()
        return response

    return handler
