"""A fast fake OpenAI upstream for the benchmark: `python -m bench.upstream` prints its port.

The test fixture (fakes/openai_upstream.py) is an aiohttp app that records
everything for assertions; at ~65 us of CPU per request it and the load generator
would share CPU 0 with too little headroom, so the upstream rather than the proxy
could set the pace. This one is a raw asyncio.Protocol on uvloop answering canned,
OpenAI-shaped bodies (with usage, so the proxy's token counting does its real work):

  POST .../chat/completions             JSON with Content-Length
  POST .../chat/completions stream=true  SSE in chunked framing, one HTTP chunk per event;
                                         a usage event when stream_options.include_usage
  anything else                         404 JSON

`x-fake-behaviour: chunks:N,chunk-delay:S` shapes a stream like the fixture does;
with `stamp:1` each content event also carries `"seq":I,"sent":NS` (its index and
time.monotonic_ns() just before the write, CLOCK_MONOTONIC: one clock for every process
of the machine) and the events leave on timer callbacks at exact multiples of the delay
from the first (no task per stream, no drift), so the held-streams load can take arrival
minus send for each chunk. `GET /__stats` answers how many stamped events were sent.
A request without `Authorization: Bearer ...` gets 401, like the real API.
"""

import asyncio
import json
import sys
import time
from typing import cast

import uvloop

PROMPT_TOKENS = 11
MAX_HEAD = 64 * 1024


def _event(document: dict[str, object]) -> bytes:
    """One SSE event as one HTTP/1.1 chunk."""
    data = b"data: " + json.dumps(document, separators=(",", ":")).encode() + b"\n\n"
    return b"%x\r\n%s\r\n" % (len(data), data)


def _chunk(delta: dict[str, object], finish: str | None) -> dict[str, object]:
    return {
        "id": "chatcmpl-bench",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": "gpt-4o-mini",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


def _response(status: str, content_type: bytes, body: bytes) -> bytes:
    return b"HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n%s" % (
        status.encode(),
        content_type,
        len(body),
        body,
    )


CHAT_BODY = json.dumps(
    {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": 1700000000,
        "model": "gpt-4o-mini",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "pong"},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": PROMPT_TOKENS, "completion_tokens": 1, "total_tokens": 12},
    }
).encode()
CHAT = _response("200 OK", b"application/json", CHAT_BODY)
UNAUTHORIZED = _response(
    "401 Unauthorized",
    b"application/json",
    b'{"error":{"message":"You didn\'t provide an API key.","type":"invalid_request_error",'
    b'"code":"missing_api_key"}}',
)
NOT_FOUND = _response("404 Not Found", b"application/json", b'{"error":{"message":"unknown"}}')
STREAM_HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
)
STREAM_FIRST = _event(_chunk({"role": "assistant"}, None))
STREAM_STOP = _event(_chunk({}, "stop"))
DONE = b"data: [DONE]\n\n"
STREAM_DONE = b"%x\r\n%s\r\n0\r\n\r\n" % (len(DONE), DONE)


def usage_event(completion_tokens: int) -> bytes:
    return _event(
        {
            **_chunk({}, None),
            "choices": [],
            "usage": {
                "prompt_tokens": PROMPT_TOKENS,
                "completion_tokens": completion_tokens,
                "total_tokens": PROMPT_TOKENS + completion_tokens,
            },
        }
    )


def content_event(i: int) -> bytes:
    return _event(_chunk({"content": f"w{i} "}, None))


STAMPED = (
    b'data: {"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1700000000,'
    b'"model":"gpt-4o-mini","seq":%d,"sent":%d,"choices":[{"index":0,"delta":'
    b'{"content":"w%d "},"finish_reason":null}]}\n\n'
)
SENT = [0]  # stamped events written by this process, for GET /__stats


def stamped_event(i: int) -> bytes:
    data = STAMPED % (i, time.monotonic_ns(), i)
    return b"%x\r\n%s\r\n" % (len(data), data)


class StampedStream:
    """One stamped stream, driven by loop.call_at: event i leaves at start + i * delay."""

    __slots__ = ("chunks", "delay", "done", "i", "loop", "start", "transport", "usage")

    def __init__(
        self, protocol: "UpstreamProtocol", chunks: int, delay: float, usage: bool
    ) -> None:
        assert protocol.transport is not None
        self.transport, self.done = protocol.transport, protocol.stream_done
        self.chunks, self.delay, self.usage, self.i = chunks, delay, usage, 0
        self.loop = asyncio.get_running_loop()
        self.transport.write(STREAM_HEAD + STREAM_FIRST)
        self.start = self.loop.time()
        self.loop.call_at(self.start + delay, self.step)

    def step(self) -> None:
        if self.transport.is_closing():
            return
        self.transport.write(stamped_event(self.i))
        SENT[0] += 1
        self.i += 1
        if self.i < self.chunks:
            self.loop.call_at(self.start + (self.i + 1) * self.delay, self.step)
            return
        usage = usage_event(self.chunks) if self.usage else b""
        self.transport.write(STREAM_STOP + usage + STREAM_DONE)
        self.done()


class Request:
    """The few parts of a request this server looks at."""

    __slots__ = ("body", "headers", "path")

    def __init__(self, path: bytes, headers: dict[bytes, bytes], body: bytes) -> None:
        self.path, self.headers, self.body = path, headers, body


def parse_head(head: bytes) -> tuple[bytes, dict[bytes, bytes]]:
    """Request line and headers (names lower-cased) of one request head."""
    lines = head.split(b"\r\n")
    path = lines[0].split(b" ")[1]
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        headers[name.strip().lower()] = value.strip()
    return path, headers


class UpstreamProtocol(asyncio.Protocol):
    """One keep-alive connection: requests are answered in order, one at a time."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None
        self.busy = False  # a stream is being written; later bytes wait in the buffer

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if not self.busy:
            self.drain_requests()

    def drain_requests(self) -> None:
        while not self.busy and (request := self.next_request()) is not None:
            self.answer(request)

    def next_request(self) -> Request | None:
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(self.buffer) > MAX_HEAD and self.transport is not None:
                self.transport.close()
            return None
        path, headers = parse_head(bytes(self.buffer[:end]))
        length = int(headers.get(b"content-length", b"0"))
        if len(self.buffer) < end + 4 + length:
            return None
        body = bytes(self.buffer[end + 4 : end + 4 + length])
        del self.buffer[: end + 4 + length]
        return Request(path, headers, body)

    def answer(self, request: Request) -> None:
        assert self.transport is not None
        if request.path == b"/__stats":
            body = json.dumps({"sent": SENT[0]}).encode()
            self.transport.write(_response("200 OK", b"application/json", body))
        elif not request.headers.get(b"authorization", b"").startswith(b"Bearer "):
            self.transport.write(UNAUTHORIZED)
        elif not request.path.endswith(b"/chat/completions"):
            self.transport.write(NOT_FOUND)
        elif b'"stream"' not in request.body:
            self.transport.write(CHAT)
        else:
            document = json.loads(request.body)
            if not document.get("stream"):
                self.transport.write(CHAT)
                return
            options = document.get("stream_options")
            usage = isinstance(options, dict) and bool(options.get("include_usage"))
            steps = dict(
                item.strip().partition(":")[::2]
                for item in request.headers.get(b"x-fake-behaviour", b"").decode().split(",")
            )
            self.busy = True
            chunks, delay = int(steps.get("chunks") or 5), float(steps.get("chunk-delay") or 0)
            if steps.get("stamp") == "1" and delay > 0:
                StampedStream(self, chunks, delay, usage)
                return
            asyncio.get_running_loop().create_task(self.stream(chunks, delay, usage))

    def stream_done(self) -> None:
        self.busy = False
        self.drain_requests()

    async def stream(self, chunks: int, delay: float, usage: bool) -> None:
        assert self.transport is not None
        self.transport.write(STREAM_HEAD + STREAM_FIRST)
        for i in range(chunks):
            if delay:
                await asyncio.sleep(delay)
            if self.transport.is_closing():
                return
            self.transport.write(content_event(i))
        self.transport.write(STREAM_STOP + (usage_event(chunks) if usage else b"") + STREAM_DONE)
        self.stream_done()


async def serve(port: int = 0) -> None:
    server = await asyncio.get_running_loop().create_server(
        UpstreamProtocol, "127.0.0.1", port, backlog=1024
    )
    print(server.sockets[0].getsockname()[1], flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    uvloop.run(serve(int(sys.argv[1]) if len(sys.argv) > 1 else 0))
