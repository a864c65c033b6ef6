"""What the relay writes to the client's socket, write by write.

Against a hand-written upstream on loopback (each of its writes a read of its own at
the proxy) and the relay (proxy.relay.relay_body) in an aiohttp server whose client
transport records every write: each upstream read leaves as one write, the read that
carries the body's end leaves together with the end-of-body marker, and the client's
head leaves with the first event when that came with the upstream's head, else alone
at once.
"""

import asyncio
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web

from proxy.observability import CallRecord
from tests.support.relay import relay_handler

HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
USAGE = b'data: {"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2}}\n\n'


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%b\r\n" % (len(data), data)


@dataclass
class Relayed:
    """What one relayed stream did: the client transport's writes (time, bytes), the
    upstream's writes (time), the body the client read, the call's record."""

    writes: list[tuple[float, bytes]]
    sent: list[float]
    body: bytes
    call: CallRecord

    @property
    def data(self) -> list[bytes]:
        return [data for _, data in self.writes]


async def relayed(
    upstream_writes: list[bytes],
    version: aiohttp.HttpVersion = aiohttp.HttpVersion11,
    hide_usage: bool = False,
) -> Relayed:
    """The upstream writes `upstream_writes` 0.1 s apart; the relay answers a client."""
    loop = asyncio.get_running_loop()
    sent: list[float] = []

    class Upstream(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport = transport

        def data_received(self, data: bytes) -> None:
            for i, write in enumerate(upstream_writes):
                loop.call_later(0.1 * i, self.write, write)

        def write(self, data: bytes) -> None:
            assert isinstance(self.transport, asyncio.Transport)
            sent.append(loop.time())
            self.transport.write(data)

    upstream_server = await loop.create_server(Upstream, "127.0.0.1", 0)
    upstream_url = f"http://127.0.0.1:{upstream_server.sockets[0].getsockname()[1]}/"
    writes: list[tuple[float, bytes]] = []
    calls: list[CallRecord] = []
    session = aiohttp.ClientSession()

    def record_writes(request: web.BaseRequest) -> None:
        transport: Any = request.transport
        original = transport.write

        def recorded(data: bytes) -> None:
            writes.append((loop.time(), bytes(data)))
            original(data)

        transport.write = recorded

    handler = relay_handler(
        lambda: session.post(upstream_url, data=b"{}"), calls, record_writes, hide_usage
    )
    runner = web.ServerRunner(web.Server(handler))
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        url = f"http://127.0.0.1:{runner.addresses[0][1]}/"
        async with (
            aiohttp.ClientSession(version=version) as client,
            client.get(url, headers={"Connection": "close"}) as response,  # (1.0: no length)
        ):
            body = await response.read()
    finally:
        await session.close()
        await runner.cleanup()
        upstream_server.close()
    return Relayed(writes, sent, body, calls[0])


def is_head(data: bytes) -> bool:
    return data.startswith(b"HTTP/1.") and data.endswith(b"\r\n\r\n")


def test_each_read_is_one_write_and_the_last_leaves_with_the_end_marker() -> None:
    first, last = b"data: one\n\n", USAGE + b"data: [DONE]\n\n"
    run = asyncio.run(
        relayed([HEAD, chunk(first), chunk(USAGE) + chunk(b"data: [DONE]\n\n") + b"0\r\n\r\n"])
    )
    head, *rest = run.data
    assert is_head(head)
    assert rest == [chunk(first), chunk(last) + b"0\r\n\r\n"]
    assert run.body == first + last
    assert (run.call.prompt_tokens, run.call.completion_tokens) == (3, 2)
    assert run.call.bytes_out == len(first) + len(last)
    assert run.call.ttfb is not None


def test_the_first_event_read_with_the_upstream_head_leaves_in_the_head_s_write() -> None:
    first, second = b"data: one\n\n", b"data: two\n\n"
    run = asyncio.run(relayed([HEAD + chunk(first), chunk(second) + b"0\r\n\r\n"]))
    head_and_first, rest = run.data
    assert head_and_first.startswith(b"HTTP/1.1 200 ")
    assert head_and_first.endswith(b"\r\n\r\n" + chunk(first))
    assert rest == chunk(second) + b"0\r\n\r\n"
    assert run.body == first + second


def test_a_head_that_comes_alone_leaves_at_once_not_with_the_first_event() -> None:
    first = b"data: one\n\n"
    run = asyncio.run(relayed([HEAD, chunk(first) + b"0\r\n\r\n"]))
    (head_at, head), (_, rest) = run.writes
    assert is_head(head)
    assert head_at < run.sent[1]  # written before the upstream had sent the event
    assert rest == chunk(first) + b"0\r\n\r\n"
    assert run.body == first


def test_a_head_whose_first_bytes_are_held_back_for_the_client_still_leaves_at_once() -> None:
    """Half an event came with the head: the usage filter holds it for the rest, and the
    head, which was to leave with it, leaves alone."""
    first = b'data: {"choices":[{"delta":{"content":"hi"}}]}\n\n'
    run = asyncio.run(
        relayed([HEAD + chunk(first[:9]), chunk(first[9:]) + b"0\r\n\r\n"], hide_usage=True)
    )
    (head_at, head), (_, rest) = run.writes
    assert is_head(head)
    assert head_at < run.sent[1]
    assert rest == chunk(first) + b"0\r\n\r\n"
    assert run.body == first


def test_a_stream_the_relay_cannot_frame_still_sends_its_head_at_once() -> None:
    """An HTTP/1.0 client gets no chunked framing: the body is copied, the head not held."""
    first = b"data: one\n\n"
    run = asyncio.run(relayed([HEAD, chunk(first) + b"0\r\n\r\n"], aiohttp.HttpVersion10))
    head_at, head = run.writes[0]
    assert is_head(head)
    assert head_at < run.sent[1]
    assert b"".join(run.data[1:]) == first
    assert run.body == first


def test_an_end_that_comes_alone_is_the_end_marker_alone() -> None:
    first = b"data: one\n\n"
    run = asyncio.run(relayed([HEAD, chunk(first), b"0\r\n\r\n"]))
    assert run.data[1:] == [chunk(first), b"0\r\n\r\n"]
    assert run.body == first
    assert run.call.bytes_out == len(first)
