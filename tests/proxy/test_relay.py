"""The event-stream relay (proxy/relay.py): every chunk as it comes, nothing held.

Against a real aiohttp upstream on loopback, shaped per test: a stream much larger
than every socket buffer on the way towards a client that does not read (the
upstream must be held back, not the proxy's memory filled), a gzip-encoded stream
flushed event by event, an upstream that goes silent past the read timeout, a
client that leaves mid-stream, and the upstream connection going back to the pool.
"""

import asyncio
import json
import socket
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import cast

import httpx
import pytest
from aiohttp import web

from tests.support.proxy import LoopThread, ProxyHandle

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "stream": True}
BIG_EVENT = b"data: " + json.dumps({"choices": [{"delta": {"content": "x" * 65000}}]}).encode()
EVENTS = 1000
USAGE = b'data: {"choices":[],"usage":{"prompt_tokens":11,"completion_tokens":%d}}\n\n'


@dataclass
class Shaped:
    """An upstream whose streams the test shapes: what it sent, and when."""

    events_sent: int = 0
    finished: bool = False
    ports: list[int] = field(default_factory=list)
    cancelled: int = 0


def shaped_app(shaped: Shaped) -> web.Application:
    async def big(request: web.Request) -> web.StreamResponse:
        """1,000 events of 64 KiB (~65 MB) as fast as the proxy takes them."""
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for _ in range(EVENTS):
            await response.write(BIG_EVENT + b"\n\n")
            shaped.events_sent += 1
        await response.write(USAGE % EVENTS + b"data: [DONE]\n\n")
        shaped.finished = True
        return response

    async def gzipped(request: web.Request) -> web.StreamResponse:
        """Five small events, each flushed through gzip and sent 0.1 s apart."""
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Content-Encoding": "gzip"}
        )
        await response.prepare(request)
        packer = zlib.compressobj(wbits=31)
        for i in range(5):
            event = b'data: {"choices":[{"delta":{"content":"w%d "}}]}\n\n' % i
            await response.write(packer.compress(event) + packer.flush(zlib.Z_SYNC_FLUSH))
            shaped.events_sent += 1
            await asyncio.sleep(0.1)
        await response.write(packer.compress(USAGE % 5 + b"data: [DONE]\n\n") + packer.flush())
        shaped.finished = True
        return response

    async def slow(request: web.Request) -> web.StreamResponse:
        """`ticks` events `delay` s apart (query parameters), and a `pause` after the second."""
        transport = request.transport
        assert transport is not None
        shaped.ports.append(transport.get_extra_info("peername")[1])
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        pause = float(request.query.get("pause", "0"))  # once, after tick 1
        delay = float(request.query.get("delay", "0.1"))
        ticks = int(request.query.get("ticks", "100"))
        try:
            for i in range(ticks):
                await response.write(b'data: {"tick":%d}\n\n' % i)
                shaped.events_sent += 1
                await asyncio.sleep(pause if i == 1 and pause else delay)
            await response.write(USAGE % ticks + b"data: [DONE]\n\n")
        except asyncio.CancelledError:
            shaped.cancelled += 1
            raise
        shaped.finished = True
        return response

    app = web.Application()
    app.router.add_post("/v1/big/chat/completions", big)
    app.router.add_post("/v1/gzip/chat/completions", gzipped)
    app.router.add_post("/v1/slow/chat/completions", slow)
    return app


@pytest.fixture
def shaped(upstream_loop: LoopThread) -> Iterator[tuple[Shaped, int]]:
    state = Shaped()

    async def start() -> tuple[web.AppRunner, int]:
        runner = web.AppRunner(shaped_app(state), handler_cancellation=True)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        return runner, runner.addresses[0][1]

    runner, port = upstream_loop.run(start())
    yield state, port
    upstream_loop.run(runner.cleanup())


def wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


def dechunk(data: bytes) -> bytes:
    """The body of an HTTP/1.1 chunked message (asserting the framing is sound)."""
    body, at = bytearray(), 0
    while True:
        end = data.index(b"\r\n", at)
        size = int(data[at:end], 16)
        assert data[end + 2 + size : end + 4 + size] == b"\r\n"
        if size == 0:
            assert end + 4 == len(data)
            return bytes(body)
        body += data[end + 2 : end + 2 + size]
        at = end + 4 + size


def read_response(sock: socket.socket) -> bytes:
    """Everything until the chunked terminator (the proxy keeps the connection open)."""
    received = bytearray()
    while not received.endswith(b"0\r\n\r\n"):
        data = sock.recv(1 << 20)
        if not data:
            break
        received += data
    return bytes(received)


def test_a_client_that_does_not_read_holds_back_the_upstream_not_the_proxys_memory(
    start_proxy: Callable[..., ProxyHandle], shaped: tuple[Shaped, int]
) -> None:
    state, port = shaped
    proxy = start_proxy(upstream=f"http://127.0.0.1:{port}/v1/big")
    body = json.dumps(CHAT).encode()
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        sock.settimeout(10)
        sock.connect(("127.0.0.1", proxy.running.port))
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
        )
        wait_for(lambda: state.events_sent > 0)
        time.sleep(1.0)
        held_at = state.events_sent
        time.sleep(0.5)
        # Stalled well short of the whole stream: socket buffers on the way hold a few
        # tens of MB at most, and the proxy stopped reading instead of buffering the rest.
        assert state.events_sent == held_at
        assert held_at < EVENTS * 0.8
        assert not state.finished
        received = read_response(sock)
    assert state.events_sent == EVENTS
    head, _, chunked = received.partition(b"\r\n\r\n")
    assert b"Transfer-Encoding: chunked" in head
    text = dechunk(chunked)
    assert text == (BIG_EVENT + b"\n\n") * EVENTS + USAGE % EVENTS + b"data: [DONE]\n\n"
    (call,) = proxy.calls(1)
    assert (call["completionTokens"], call.get("error")) == (EVENTS, None)
    assert call["bytesOut"] == EVENTS * (len(BIG_EVENT) + 2) + len(USAGE % EVENTS) + 14


def test_a_gzipped_stream_is_relayed_decoded_event_by_event(
    start_proxy: Callable[..., ProxyHandle], shaped: tuple[Shaped, int]
) -> None:
    state, port = shaped
    proxy = start_proxy(upstream=f"http://127.0.0.1:{port}/v1/gzip")
    seen_when: list[int] = []
    text = b""
    url = proxy.base_url + "/chat/completions"
    with httpx.stream("POST", url, json=CHAT) as response:
        assert "content-encoding" not in response.headers
        for chunk in response.iter_raw():
            text += chunk
            seen_when.append(state.events_sent)
    assert text.startswith(b"data: ")  # decoded: no gzip header
    assert [text.count(b'"w%d "' % i) for i in range(5)] == [1] * 5
    assert seen_when[0] <= 2  # the first event reached the client while the rest was pending
    (call,) = proxy.calls(1)
    assert (call["promptTokens"], call["completionTokens"]) == (11, 5)


def test_an_upstream_silent_past_the_read_timeout_cuts_the_stream(
    start_proxy: Callable[..., ProxyHandle], shaped: tuple[Shaped, int]
) -> None:
    _, port = shaped
    proxy = start_proxy(upstream=f"http://127.0.0.1:{port}/v1/slow", read_timeout=0.3)
    received: list[bytes] = []

    def read_all() -> None:
        url = proxy.base_url + "/chat/completions?pause=2&ticks=3"
        with httpx.stream("POST", url, json=CHAT) as response:
            received.extend(response.iter_raw())

    with pytest.raises(httpx.RemoteProtocolError):  # cut, not a clean short answer
        read_all()
    assert b'"tick":1' in b"".join(received)
    assert b'"tick":2' not in b"".join(received)
    (call,) = proxy.calls(1)
    assert call["error"] == "upstream_read_timeout"


def test_a_stream_longer_than_the_read_timeout_is_not_cut_while_events_flow(
    start_proxy: Callable[..., ProxyHandle], shaped: tuple[Shaped, int]
) -> None:
    """The read timeout is silence between reads, not the stream's length: no timer armed
    before the relay took over (while the head was read) may fire during it."""
    _, port = shaped
    proxy = start_proxy(upstream=f"http://127.0.0.1:{port}/v1/slow", read_timeout=0.3)
    url = proxy.base_url + "/chat/completions?delay=0.1&ticks=12"  # 1.2 s, 4 timeouts
    with httpx.stream("POST", url, json=CHAT) as response:
        text = b"".join(response.iter_raw())
    assert [text.count(b'"tick":%d}' % i) for i in range(12)] == [1] * 12
    assert text.endswith(b"data: [DONE]\n\n")
    (call,) = proxy.calls(1)
    assert "error" not in call
    assert call["completionTokens"] == 12


def test_a_client_leaving_mid_stream_ends_the_upstream_request(
    start_proxy: Callable[..., ProxyHandle], shaped: tuple[Shaped, int]
) -> None:
    state, port = shaped
    proxy = start_proxy(upstream=f"http://127.0.0.1:{port}/v1/slow")
    url = proxy.base_url + "/chat/completions"
    with httpx.stream("POST", url, json=CHAT) as response:
        for chunk in response.iter_raw():
            if b'"tick":1' in chunk:
                break
    wait_for(lambda: state.cancelled == 1)
    (call,) = proxy.calls(1)
    assert call["error"] == "client_disconnected"
    assert not state.finished


def test_relayed_streams_leave_the_upstream_connection_reusable(
    start_proxy: Callable[..., ProxyHandle], shaped: tuple[Shaped, int]
) -> None:
    state, port = shaped
    proxy = start_proxy(upstream=f"http://127.0.0.1:{port}/v1/slow")
    url = proxy.base_url + "/chat/completions?ticks=20&delay=0.01"
    with httpx.Client() as client:
        for _ in range(3):
            text = client.post(url, json=CHAT).content
            assert [text.count(b'"tick":%d}' % i) for i in range(20)] == [1] * 20
            assert text.endswith(b"data: [DONE]\n\n")
    assert len(state.ports) == 3
    assert len(set(state.ports)) == 1  # one pooled connection
    calls = proxy.calls(3)
    assert [(c["completionTokens"], c.get("error")) for c in calls] == [(20, None)] * 3


def test_event_streams_are_told_by_media_type_whatever_the_parameters() -> None:
    from proxy.relay import is_event_stream

    assert is_event_stream("text/event-stream")
    assert is_event_stream("Text/Event-Stream; charset=utf-8")
    assert not is_event_stream("application/json")
    assert not is_event_stream("text/event-streams")
    assert not is_event_stream("")


@dataclass
class RawUpstream:
    """A hand-written HTTP upstream: answers each request with the writes the test queued,
    0.2 s apart (so each reaches the proxy as a read of its own)."""

    port: int = 0
    answers: list[list[bytes]] = field(default_factory=list)
    connections: int = 0  # accepted so far


@pytest.fixture
def raw_upstream(upstream_loop: LoopThread) -> Iterator[RawUpstream]:
    raw = RawUpstream()

    class Raw(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport = cast(asyncio.Transport, transport)
            raw.connections += 1

        def data_received(self, data: bytes) -> None:
            if b"\r\n\r\n" in data and raw.answers:
                loop = asyncio.get_running_loop()
                for i, write in enumerate(raw.answers.pop(0)):
                    loop.call_later(0.2 * i, self.transport.write, write)

    async def start() -> asyncio.Server:
        return await asyncio.get_running_loop().create_server(Raw, "127.0.0.1", 0)

    server = upstream_loop.run(start())
    raw.port = server.sockets[0].getsockname()[1]
    yield raw
    server.close()


SSE_HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
)


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def read_one_response(sock: socket.socket) -> tuple[bytes, bytes]:
    """Head and de-chunked body of one response, read by its framing (nothing more)."""
    received = bytearray()
    while True:
        head, sep, rest = bytes(received).partition(b"\r\n\r\n")
        at, body = 0, bytearray()
        while sep:
            end = rest.find(b"\r\n", at)
            if end < 0:
                break
            size = int(rest[at:end], 16)
            if len(rest) < end + 4 + size:
                break
            if size == 0:
                return head, bytes(body)
            body += rest[end + 2 : end + 2 + size]
            at = end + 4 + size
        data = sock.recv(65536)
        assert data, "connection closed mid-response"
        received += data


def test_broken_chunk_framing_mid_stream_cuts_the_client_response(
    start_proxy: Callable[..., ProxyHandle], raw_upstream: RawUpstream
) -> None:
    answers, port = raw_upstream.answers, raw_upstream.port
    answers.append([SSE_HEAD + chunk(b'data: {"n":1}\n\n'), b"zz\r\nnot a chunk\r\n"])
    proxy = start_proxy(upstream=f"http://127.0.0.1:{port}/v1")
    received: list[bytes] = []

    def read_all() -> None:
        with httpx.stream("POST", proxy.base_url + "/chat/completions", json=CHAT) as response:
            received.extend(response.iter_raw())

    with pytest.raises(httpx.RemoteProtocolError):
        read_all()
    assert b"".join(received) == b'data: {"n":1}\n\n'
    (call,) = proxy.calls(1)
    assert call["error"] == "upstream_dropped"


def test_a_response_hidden_in_an_event_stays_body_bytes_for_the_client(
    start_proxy: Callable[..., ProxyHandle], raw_upstream: RawUpstream
) -> None:
    """Bytes that look like the end of a response and a second one are data inside one
    upstream chunk: the relay frames them again by length, so the client reads them as
    body, and the next response on its keep-alive connection is the real next one."""
    answers, port = raw_upstream.answers, raw_upstream.port
    smuggled = b"0\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"
    first = b"data: x\n\n" + smuggled
    answers.append([SSE_HEAD + chunk(first), chunk(b"data: [DONE]\n\n") + b"0\r\n\r\n"])
    answers.append([SSE_HEAD + chunk(b"data: second\n\n") + b"0\r\n\r\n"])
    proxy = start_proxy(upstream=f"http://127.0.0.1:{port}/v1")
    body = json.dumps(CHAT).encode()
    request = (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
    )
    with socket.create_connection(("127.0.0.1", proxy.running.port), timeout=10) as sock:
        sock.sendall(request)
        head, text = read_one_response(sock)
        assert head.startswith(b"HTTP/1.1 200")
        assert text == first + b"data: [DONE]\n\n"
        sock.sendall(request)
        head, text = read_one_response(sock)
        assert head.startswith(b"HTTP/1.1 200")
        assert text == b"data: second\n\n"


def test_a_response_the_upstream_sends_unasked_after_a_stream_closes_its_connection(
    start_proxy: Callable[..., ProxyHandle], raw_upstream: RawUpstream
) -> None:
    """Bytes after the stream's last chunk are a response nobody asked for: the stream
    ends intact, and that connection is not used for the next call."""
    unasked = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"
    raw_upstream.answers.append(
        [SSE_HEAD + chunk(b"data: one\n\n"), chunk(b"data: [DONE]\n\n") + b"0\r\n\r\n" + unasked]
    )
    raw_upstream.answers.append([SSE_HEAD + chunk(b"data: two\n\n") + b"0\r\n\r\n"])
    proxy = start_proxy(upstream=f"http://127.0.0.1:{raw_upstream.port}/v1")
    with httpx.Client(base_url=proxy.base_url) as client:
        first = client.post("/chat/completions", json=CHAT)
        second = client.post("/chat/completions", json=CHAT)
    assert first.content == b"data: one\n\ndata: [DONE]\n\n"
    assert second.content == b"data: two\n\n"
    assert raw_upstream.connections == 2
    assert [call.get("error") for call in proxy.calls(2)] == [None, None]
