"""A lean HTTP/1.1 keep-alive client for the closed-loop chat load.

aiohttp's client costs ~100 us of CPU per request; on CPU 0 beside the upstream
that left too little headroom to be sure the proxy, not the load generator, set
the pace. This one sends a prebuilt request and parses only the status line,
Content-Length or chunked framing of each response (~20 us per request).
"""

import asyncio
from typing import cast
from urllib.parse import urlsplit


class ResponseReader:
    """Incremental parser for one response at a time on a keep-alive connection."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.reset()

    def reset(self) -> None:
        self.status = 0
        self.head_done = False
        self.length: int | None = None  # Content-Length, or None for chunked
        self.close = False

    def feed(self, data: bytes) -> bool:
        """Add bytes; True once a whole response is in (its bytes are then dropped)."""
        self.buffer += data
        if not self.head_done:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return False
            head = bytes(self.buffer[:end]).lower()
            del self.buffer[: end + 4]
            self.status = int(head[9:12])
            self.head_done = True
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name == b"content-length":
                    self.length = int(value)
                elif name == b"connection" and b"close" in value:
                    self.close = True
            if self.length is None and b"transfer-encoding" not in head:
                self.length = 0
        if self.length is not None:
            if len(self.buffer) < self.length:
                return False
            del self.buffer[: self.length]
            return True
        return self._chunked_done()

    def _chunked_done(self) -> bool:
        """Consume whole chunks; True after the last (zero-size) one and its CRLF."""
        while True:
            end = self.buffer.find(b"\r\n")
            if end < 0:
                return False
            size = int(bytes(self.buffer[:end]).split(b";")[0], 16)
            if size == 0:
                trailer = self.buffer.find(b"\r\n\r\n", end)
                if trailer < 0:
                    return False
                del self.buffer[: trailer + 4]
                return True
            if len(self.buffer) < end + 2 + size + 2:
                return False
            del self.buffer[: end + 2 + size + 2]


class ClientProtocol(asyncio.Protocol):
    """One connection; `request` sends and resolves with the status (0 on a lost one)."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.reader = ResponseReader()
        self.waiter: asyncio.Future[int] | None = None
        self.lost = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass

    def data_received(self, data: bytes) -> None:
        if self.reader.feed(data) and self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(self.reader.status)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(0)

    async def request(self, raw: bytes) -> int:
        assert self.transport is not None
        self.reader.reset()
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(raw)
        return await self.waiter


def build_post(url: str, body: bytes, headers: dict[str, str]) -> tuple[str, int, bytes]:
    """Host, port and the request bytes for a POST to `url` (http only)."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    lines = [f"POST {parts.path} HTTP/1.1", f"Host: {host}:{port}", f"Content-Length: {len(body)}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return host, port, ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def connect(host: str, port: int) -> ClientProtocol:
    _, protocol = await asyncio.get_running_loop().create_connection(ClientProtocol, host, port)
    return protocol
