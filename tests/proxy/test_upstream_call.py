"""DirectCaller against a raw upstream on loopback: the same request as the session's.

The upstream records each connection's raw bytes and answers every request head with
a small JSON body; the tests compare what it received from `session.request` and from
`DirectCaller.request` for the same call, and check pooling and errors.
"""

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import aiohttp
import pytest
from multidict import CIMultiDict
from yarl import URL

from proxy.forward import _direct
from proxy.payload import SLICE_BYTES
from proxy.upstream_call import DirectCaller

ANSWER = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
BODY = bytearray(b'{"model":"gpt-4o-mini","messages":[]}')


@dataclass
class RecordingUpstream:
    """Each connection's bytes, in order; answers each request once its body is in."""

    connections: list[bytearray] = field(default_factory=list)
    answer: bool = True

    def protocol(self) -> asyncio.Protocol:
        upstream = self
        received = bytearray()
        self.connections.append(received)

        class Recording(asyncio.Protocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                self.transport = transport

            def data_received(self, data: bytes) -> None:
                received.extend(data)
                if upstream.answer and received.endswith(bytes(BODY)):
                    assert isinstance(self.transport, asyncio.Transport)
                    self.transport.write(ANSWER)
                elif not upstream.answer:
                    self.transport.close()

        return Recording()


@asynccontextmanager
async def upstream_and_session(
    upstream: RecordingUpstream,
) -> AsyncIterator[tuple[str, aiohttp.ClientSession, DirectCaller]]:
    server = await asyncio.get_running_loop().create_server(upstream.protocol, "127.0.0.1", 0)
    base = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    session = aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=None, sock_read=5),
        cookie_jar=aiohttp.DummyCookieJar(),
    )
    try:
        yield base, session, DirectCaller(session, URL(base))
    finally:
        await session.close()
        server.close()


def request_headers(raw: bytes) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    """The request line and the (lower-cased name, value) pairs, in the order sent."""
    head = raw.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
    pairs = [line.split(b": ", 1) for line in head[1:]]
    return head[0], [(name.lower(), value) for name, value in pairs]


def client_headers() -> CIMultiDict[str]:
    return CIMultiDict(
        [("Authorization", "Bearer sk-test"), ("Content-Type", "application/json"),
         ("X-Stainless-Lang", "python"), ("Accept-Encoding", "gzip, deflate")]
    )  # fmt: skip


def test_the_upstream_receives_the_same_request_from_both_paths() -> None:
    async def scenario() -> tuple[bytes, bytes]:
        upstream = RecordingUpstream()
        async with upstream_and_session(upstream) as (base, session, direct):
            url = URL(f"{base}/v1/chat/completions?api-version=1")
            via_session = await session.request(
                "POST", url, headers=client_headers(), data=BODY, allow_redirects=False
            )
            assert await via_session.read() == b"{}"
            via_direct = await direct.request("POST", url, client_headers(), BODY)
            assert (via_direct.status, await via_direct.read()) == (200, b"{}")
            assert via_direct.headers["Content-Type"] == "application/json"
        sent = bytes(upstream.connections[0])
        first_end = sent.index(bytes(BODY)) + len(BODY)
        return sent[:first_end], sent[first_end:]

    from_session, from_direct = asyncio.run(scenario())
    line, headers = request_headers(from_session)
    assert line == b"POST /v1/chat/completions?api-version=1 HTTP/1.1"
    assert request_headers(from_direct) == (line, headers)  # same headers, same order
    assert {b"host", b"accept", b"user-agent", b"content-length"} <= dict(headers).keys()
    assert from_direct.endswith(b"\r\n\r\n" + BODY)


def test_direct_calls_reuse_the_pooled_connection_the_session_uses_too() -> None:
    async def scenario() -> int:
        upstream = RecordingUpstream()
        async with upstream_and_session(upstream) as (base, session, direct):
            url = URL(f"{base}/v1/chat/completions")
            for _ in range(3):
                response = await direct.request("POST", url, client_headers(), BODY)
                await response.read()
                response.release()
            response = await session.post(url, headers=client_headers(), data=BODY)
            await response.read()
        return len(upstream.connections)

    assert asyncio.run(scenario()) == 1


def test_a_header_value_with_a_line_break_is_refused_before_anything_is_sent() -> None:
    async def scenario() -> list[bytearray]:
        upstream = RecordingUpstream()
        async with upstream_and_session(upstream) as (base, _, direct):
            headers = client_headers()
            headers["X-Injected"] = "a\r\nEvil: 1"
            with pytest.raises(ValueError, match="header injection"):
                await direct.request("POST", URL(f"{base}/v1/x"), headers, BODY)
        return upstream.connections

    assert asyncio.run(scenario()) == []


def test_failures_are_the_client_errors_the_session_raises() -> None:
    async def scenario() -> None:
        upstream = RecordingUpstream(answer=False)  # closes on the first bytes
        async with upstream_and_session(upstream) as (base, _, direct):
            with pytest.raises(aiohttp.ServerDisconnectedError):
                await direct.request("POST", URL(f"{base}/v1/x"), client_headers(), BODY)
            with socket.socket() as unused:
                unused.bind(("127.0.0.1", 0))
                closed = f"http://127.0.0.1:{unused.getsockname()[1]}"
            refused = DirectCaller(direct._session, URL(closed))
            with pytest.raises(aiohttp.ClientConnectorError):
                await refused.request("POST", URL(f"{closed}/v1/x"), client_headers(), BODY)

    asyncio.run(scenario())


def test_only_a_small_buffered_post_without_an_egress_proxy_goes_direct() -> None:
    assert _direct(BODY, "POST", None)
    assert not _direct(BODY, "PUT", None)
    assert not _direct(bytearray(), "POST", None)
    assert not _direct(bytearray(SLICE_BYTES + 1), "POST", None)
    assert not _direct(BODY, "POST", "http://egress:3128")
    assert not _direct(None, "POST", None)
