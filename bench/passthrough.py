"""Minimal passthroughs: the bare reference the proxy is measured against, and client variants.

`python -m bench.passthrough CLIENT UPSTREAM_BASE` serves /v1/... on a free port
(printed on stdout) with the same aiohttp server and a different upstream client:

  aiohttp        aiohttp.ClientSession: the "bare passthrough (aiohttp)" row, the
                 simplest thing that could work in Python, and the proxy's own client
  httpx          a default httpx.AsyncClient           (only with --clients)
  httpx-aiohttp  httpx.AsyncClient over httpx-aiohttp  (only with --clients)

No checks, logging or metrics: whatever the proxy costs beyond this is its own.
"""

import asyncio
import sys
from collections.abc import AsyncIterator, Awaitable, Callable

import uvloop
from aiohttp import web

DROP = {"host", "content-length", "transfer-encoding", "connection", "keep-alive"}
Handler = Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]


def aiohttp_handler(upstream: str) -> tuple[Handler, Callable[[], Awaitable[None]]]:
    import aiohttp

    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=4096))

    async def handle(request: web.BaseRequest) -> web.StreamResponse:
        headers = {k: v for k, v in request.headers.items() if k.lower() not in DROP}
        body = await request.read()
        async with session.request(
            request.method, upstream + request.raw_path[3:], headers=headers, data=body
        ) as upstream_response:
            response = web.StreamResponse(status=upstream_response.status)
            response.content_type = upstream_response.content_type
            await response.prepare(request)
            try:
                while chunk := await upstream_response.content.readany():
                    await response.write(chunk)
                await response.write_eof()
            except ConnectionResetError:
                pass  # the caller hung up (a load run ending): nothing to send or log
            return response

    return handle, session.close


def httpx_handler(
    upstream: str, over_aiohttp: bool
) -> tuple[Handler, Callable[[], Awaitable[None]]]:
    import httpx

    if over_aiohttp:
        from httpx_aiohttp import HttpxAiohttpClient

        client: httpx.AsyncClient = HttpxAiohttpClient(
            limits=httpx.Limits(max_connections=256, max_keepalive_connections=256)
        )
    else:
        client = httpx.AsyncClient()  # the default pool, as most code uses it

    async def handle(request: web.BaseRequest) -> web.StreamResponse:
        headers = {k: v for k, v in request.headers.items() if k.lower() not in DROP}
        body = await request.read()
        outgoing = client.build_request(
            request.method, upstream + request.raw_path[3:], headers=headers, content=body
        )
        upstream_response = await client.send(outgoing, stream=True)
        try:
            response = web.StreamResponse(status=upstream_response.status_code)
            response.headers["Content-Type"] = upstream_response.headers.get(
                "content-type", "application/octet-stream"
            )
            await response.prepare(request)
            chunks: AsyncIterator[bytes] = upstream_response.aiter_raw()
            try:
                async for chunk in chunks:
                    await response.write(chunk)
                await response.write_eof()
            except ConnectionResetError:
                pass  # the caller hung up (a load run ending): nothing to send or log
            return response
        finally:
            await upstream_response.aclose()

    return handle, client.aclose


async def serve(client: str, upstream: str) -> None:
    if client == "aiohttp":
        handle, _close = aiohttp_handler(upstream)
    else:
        handle, _close = httpx_handler(upstream, over_aiohttp=client == "httpx-aiohttp")
    runner = web.ServerRunner(web.Server(handle), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024)
    await site.start()
    print(runner.addresses[0][1], flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    uvloop.run(serve(sys.argv[1], sys.argv[2].rstrip("/")))
