"""Bare passthroughs on other server stacks, with aiohttp's client or pyreqwest's (Rust).

`python -m bench.passthrough_stacks KIND UPSTREAM_BASE` serves /v1/... on a free
port (printed on stdout first) and behaves like bench/passthrough.py's aiohttp
row: forward method, path, body and headers minus hop-by-hop ones, stream the
answer back chunk by chunk as the upstream gives it (no buffering of SSE), no
checks, log or metrics. Only the server side changes:

  granian-rsgi   granian (Rust, hyper + tokio) through its RSGI interface
  granian-asgi   granian through its ASGI interface
  uvicorn        uvicorn with httptools (C parser) and uvloop, ASGI
  httptools      a raw asyncio.Protocol on uvloop with httptools' parser, no framework
  socketify      socketify (uWebSockets, C++ over libuv, its loop interleaved with asyncio's);
                 not in requirements-dev.txt: 0.0.31 crashed under load (see RESULTS.md)

KIND+pyreqwest (e.g. httptools+pyreqwest) swaps the upstream client for pyreqwest's
(reqwest + hyper on its own tokio runtime, streamed body via read_chunk, its read-ahead
buffer off: with the default 64 KiB a stream's first byte waits for its last); KIND+raw
for a minimal keep-alive client on httptools' response parser (this file, no pool
limits, timeouts or retries: the floor of a Python client on uvloop).

granian runs its app in a worker process it spawns (workers=1); the harness counts
the CPU of the whole process tree.
"""

import asyncio
import contextlib
import os
import socket
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from http import HTTPStatus
from typing import Any, cast
from urllib.parse import urlsplit

import aiohttp
import uvloop

DROP = {"host", "content-length", "transfer-encoding", "connection", "keep-alive"}
Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

UPSTREAM = os.environ.get("BENCH_STACK_UPSTREAM", "").rstrip("/")
CLIENT = os.environ.get("BENCH_STACK_CLIENT", "aiohttp")
_session: aiohttp.ClientSession | None = None
_reqwest: Any = None


def session() -> aiohttp.ClientSession:
    """One client per worker, made lazily inside the worker's own event loop."""
    global _session
    if _session is None:
        _session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=256))
    return _session


def upstream_url(raw_path: str) -> str:
    return UPSTREAM + raw_path[3:]  # /v1/x -> UPSTREAM (ends in /v1) + /x


Chunks = AsyncIterator[bytes]


class UpstreamConnection(asyncio.Protocol):
    """A minimal keep-alive HTTP/1.1 client connection on httptools' response parser."""

    def __init__(self) -> None:
        import httptools

        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.keep = False
        self.content_type = "application/octet-stream"
        self.head: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.chunks: asyncio.Queue[bytes | None] = asyncio.Queue()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self.head.done():
            self.head.set_exception(ConnectionError("upstream closed"))
        self.chunks.put_nowait(None)

    def data_received(self, data: bytes) -> None:
        self.parser.feed_data(data)

    def send(self, head: bytes, body: bytes) -> None:
        self.head = asyncio.get_running_loop().create_future()
        self.chunks = asyncio.Queue()
        self.content_type = "application/octet-stream"
        assert self.transport is not None
        self.transport.write(head + body)

    # httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() == b"content-type":
            self.content_type = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        self.head.set_result(self.parser.get_status_code())

    def on_body(self, body: bytes) -> None:
        self.chunks.put_nowait(body)

    def on_message_complete(self) -> None:
        self.keep = self.parser.should_keep_alive()
        self.chunks.put_nowait(None)


_idle: list[UpstreamConnection] = []


async def raw_connection() -> UpstreamConnection:
    while _idle:
        connection = _idle.pop()
        if not connection.closed:
            return connection
    parts = urlsplit(UPSTREAM)
    _, protocol = await asyncio.get_running_loop().create_connection(
        UpstreamConnection, parts.hostname or "127.0.0.1", parts.port or 80
    )
    return protocol


@contextlib.asynccontextmanager
async def forward(
    method: str, path: str, headers: dict[str, str], body: bytes
) -> AsyncIterator[tuple[int, str, Chunks]]:
    """Send the request upstream: (status, content type, the body's chunks as they come)."""
    if CLIENT == "raw":
        connection = await raw_connection()
        parts = urlsplit(UPSTREAM)
        lines = [f"{method} {parts.path}{path[3:]} HTTP/1.1", f"Host: {parts.netloc}"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        lines.append(f"Content-Length: {len(body)}")
        connection.send(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"), body)
        status = await connection.head
        done = False

        async def raw_chunks() -> Chunks:
            nonlocal done
            while (chunk := await connection.chunks.get()) is not None:
                yield chunk
            done = True

        try:
            yield status, connection.content_type, raw_chunks()
        finally:
            if done and connection.keep and not connection.closed:
                _idle.append(connection)
            elif connection.transport is not None:
                connection.transport.close()
        return
    if CLIENT == "pyreqwest":
        global _reqwest
        if _reqwest is None:
            from pyreqwest.client import ClientBuilder

            _reqwest = ClientBuilder().max_connections(256).build()
        request = (
            _reqwest.request(method, upstream_url(path))
            .headers(headers)
            .body_bytes(body)
            .streamed_read_buffer_limit(0)  # else __aenter__ waits for 64 KiB or the body's end
            .build_streamed()
        )
        async with request as response:
            reader = response.body_reader

            async def reqwest_chunks() -> Chunks:
                while (chunk := await reader.read_chunk()) is not None:
                    yield bytes(chunk)

            content_type = response.headers.get("content-type", "application/octet-stream")
            yield response.status, content_type, reqwest_chunks()
        return
    async with session().request(
        method, upstream_url(path), headers=headers, data=body
    ) as upstream:

        async def aiohttp_chunks() -> Chunks:
            while chunk := await upstream.content.readany():
                yield chunk

        content_type = upstream.headers.get("Content-Type", "application/octet-stream")
        yield upstream.status, content_type, aiohttp_chunks()


async def asgi_app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        while (message := await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    body = bytearray()
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    headers = {
        k.decode("latin-1"): v.decode("latin-1")
        for k, v in scope["headers"]
        if k.decode("latin-1").lower() not in DROP
    }
    path = scope.get("raw_path") or scope["path"].encode()
    if scope.get("query_string"):
        path += b"?" + scope["query_string"]
    async with forward(scope["method"], path.decode("latin-1"), headers, bytes(body)) as (
        status,
        content_type,
        chunks,
    ):
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", content_type.encode("latin-1"))],
            }
        )
        async for chunk in chunks:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})


async def rsgi_app(scope: Any, proto: Any) -> None:
    body = await proto()
    headers = {k: v for k, v in scope.headers.items() if k.lower() not in DROP}
    path = scope.path + ("?" + scope.query_string if scope.query_string else "")
    async with forward(scope.method, path, headers, body) as (status, content_type, chunks):
        transport = proto.response_stream(status, [("content-type", content_type)])
        async for chunk in chunks:
            await transport.send_bytes(chunk)


class HttptoolsProtocol(asyncio.Protocol):
    """HTTP/1.1 keep-alive server on httptools' parser; one request at a time per connection."""

    def __init__(self) -> None:
        import httptools

        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.url = b""
        self.headers: dict[str, str] = {}
        self.body = bytearray()
        self.queue: asyncio.Queue[tuple[str, str, dict[str, str], bytes, bool]] = asyncio.Queue()
        self.task: asyncio.Task[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass
        self.task = asyncio.get_running_loop().create_task(self.serve())

    def connection_lost(self, exc: Exception | None) -> None:
        if self.task is not None:
            self.task.cancel()

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except Exception:
            assert self.transport is not None
            self.transport.close()

    # httptools callbacks
    def on_message_begin(self) -> None:
        self.url, self.headers, self.body = b"", {}, bytearray()

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        key = name.decode("latin-1")
        if key.lower() not in DROP:
            self.headers[key] = value.decode("latin-1")

    def on_body(self, body: bytes) -> None:
        self.body += body

    def on_message_complete(self) -> None:
        method = self.parser.get_method().decode()
        keep = self.parser.should_keep_alive()
        self.queue.put_nowait(
            (method, self.url.decode("latin-1"), self.headers, bytes(self.body), keep)
        )

    async def serve(self) -> None:
        transport = self.transport
        assert transport is not None
        while not transport.is_closing():
            method, path, headers, body, keep = await self.queue.get()
            async with forward(method, path, headers, body) as (status, content_type, chunks):
                head = (
                    f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\n"
                    f"content-type: {content_type}\r\ntransfer-encoding: chunked\r\n"
                    + ("" if keep else "connection: close\r\n")
                    + "\r\n"
                )
                transport.write(head.encode("latin-1"))
                async for chunk in chunks:
                    transport.write(b"%x\r\n%b\r\n" % (len(chunk), chunk))
                transport.write(b"0\r\n\r\n")
            if not keep:
                transport.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def serve_httptools(port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(HttptoolsProtocol, "127.0.0.1", port, backlog=1024)
    async with server:
        await server.serve_forever()


def serve_socketify(port: int) -> None:
    from socketify import App, AppListenOptions  # type: ignore[import-untyped,import-not-found,unused-ignore]

    asyncio.set_event_loop(uvloop.new_event_loop())  # socketify drives the current loop
    app = App(lifespan=False)

    async def handle(res: Any, req: Any) -> None:
        # req is only valid until the first await: read everything from it first
        method, path = req.get_method(), req.get_full_url()
        headers = {k: v for k, v in req.get_headers().items() if k.lower() not in DROP}
        body = (await res.get_data()).getvalue()
        async with forward(method, path, headers, body) as (status, content_type, chunks):
            res.write_status(status)
            res.write_header("content-type", content_type)
            async for chunk in chunks:
                res.write(chunk)
            res.end(b"")

    app.any("/*", handle)
    app.listen(AppListenOptions(port=port, host="127.0.0.1"), lambda config: None)
    app.run()


def main(kind: str, upstream: str) -> None:
    """KIND is a server, optionally `+pyreqwest` for the Rust client instead of aiohttp's."""
    global UPSTREAM, CLIENT
    kind, _, client = kind.partition("+")
    UPSTREAM, CLIENT = upstream.rstrip("/"), client or "aiohttp"
    os.environ["BENCH_STACK_UPSTREAM"], os.environ["BENCH_STACK_CLIENT"] = UPSTREAM, CLIENT
    port = free_port()
    print(port, flush=True)
    if kind.startswith("granian-"):
        from granian.constants import Interfaces, Loops
        from granian.server import Server

        interface = Interfaces.RSGI if kind == "granian-rsgi" else Interfaces.ASGI
        target = "bench.passthrough_stacks:" + (
            "rsgi_app" if kind == "granian-rsgi" else "asgi_app"
        )
        Server(
            target, address="127.0.0.1", port=port, interface=interface, workers=1,
            loop=Loops.uvloop, log_enabled=False, backlog=1024,
        ).serve()  # fmt: skip
    elif kind == "uvicorn":
        import uvicorn

        uvicorn.run(
            "bench.passthrough_stacks:asgi_app", host="127.0.0.1", port=port, loop="uvloop",
            http="httptools", lifespan="off", access_log=False, log_level="warning",
            backlog=1024,
        )  # fmt: skip
    elif kind == "httptools":
        uvloop.run(serve_httptools(port))
    elif kind == "socketify":
        serve_socketify(port)
    else:
        raise SystemExit(f"unknown kind {kind!r}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
