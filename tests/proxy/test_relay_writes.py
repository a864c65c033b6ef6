"""What the relay writes to the client's socket, write by write.

Against a hand-written upstream on loopback (each of its writes a read of its own at
the proxy) and the relay (proxy.relay.relay_body) in an aiohttp server whose client
transport records every write: each upstream read leaves as one write, and the read
that carries the body's end leaves together with the end-of-body marker.
"""

import asyncio
from typing import Any

import aiohttp
from aiohttp import web

from proxy.observability import CallRecord
from proxy.relay import relay_body
from proxy.usage import UsageTail

HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
USAGE = b'data: {"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2}}\n\n'


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%b\r\n" % (len(data), data)


async def relayed_writes(upstream_writes: list[bytes]) -> tuple[list[bytes], bytes, CallRecord]:
    """The client transport's writes after the head, the body the client read, the call."""

    class Upstream(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport = transport

        def data_received(self, data: bytes) -> None:
            assert isinstance(self.transport, asyncio.Transport)
            loop = asyncio.get_running_loop()
            for i, write in enumerate(upstream_writes):
                loop.call_later(0.1 * i, self.transport.write, write)

    loop = asyncio.get_running_loop()
    upstream_server = await loop.create_server(Upstream, "127.0.0.1", 0)
    upstream_url = f"http://127.0.0.1:{upstream_server.sockets[0].getsockname()[1]}/"
    writes: list[bytes] = []
    calls: list[CallRecord] = []
    session = aiohttp.ClientSession()

    async def handler(request: web.BaseRequest) -> web.StreamResponse:
        call = CallRecord(request.method, request.path, "stream", streamed=True)
        calls.append(call)
        upstream = await session.post(upstream_url, data=b"{}")
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        transport: Any = request.transport
        original = transport.write

        def recorded(data: bytes) -> None:
            writes.append(bytes(data))
            original(data)

        transport.write = recorded
        tail = UsageTail()
        await relay_body(request, upstream, response, call, tail, b"")
        call.prompt_tokens, call.completion_tokens = tail.tokens()
        upstream.release()
        return response

    runner = web.ServerRunner(web.Server(handler))
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        url = f"http://127.0.0.1:{runner.addresses[0][1]}/"
        async with aiohttp.ClientSession() as client, client.get(url) as response:
            body = await response.read()
    finally:
        await session.close()
        await runner.cleanup()
        upstream_server.close()
    return writes, body, calls[0]


def test_each_read_is_one_write_and_the_last_leaves_with_the_end_marker() -> None:
    first, last = b"data: one\n\n", USAGE + b"data: [DONE]\n\n"
    writes, body, call = asyncio.run(
        relayed_writes(
            [HEAD + chunk(first), chunk(USAGE) + chunk(b"data: [DONE]\n\n") + b"0\r\n\r\n"]
        )
    )
    assert writes == [chunk(first), chunk(last) + b"0\r\n\r\n"]
    assert body == first + last
    assert (call.prompt_tokens, call.completion_tokens) == (3, 2)
    assert call.bytes_out == len(first) + len(last)
    assert call.ttfb is not None


def test_an_end_that_comes_alone_is_the_end_marker_alone() -> None:
    first = b"data: one\n\n"
    writes, body, call = asyncio.run(relayed_writes([HEAD + chunk(first), b"0\r\n\r\n"]))
    assert writes == [chunk(first), b"0\r\n\r\n"]
    assert body == first
    assert call.bytes_out == len(first)
