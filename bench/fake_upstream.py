"""A fake OpenAI upstream on loopback, for the proxy tests and the benchmark.

Answers chat completions (plain and SSE, with the usage chunk when the client
asks for it), embeddings, models, and responses (plain and SSE). It records the
credential headers it receives so tests can prove what the proxy sent. A test
steers one request with the `x-fake-behaviour` header, comma-separated:

  status:429        answer with that status and an OpenAI-shaped error
  slow:1.5          wait that many seconds before the response headers
  chunk-delay:0.05  pause between stream chunks (default 0)
  chunks:20         number of content chunks in a stream (default 5)
  drop              close the connection without answering
  drop-mid-stream   send part of a stream, then close the connection
  gzip              gzip a non-stream body when the client accepts it
  linger:0.5        keep a stream open that long after `data: [DONE]`

A request without `Authorization: Bearer ...` gets 401, like the real API.
"""

import asyncio
import gzip
import json
import time
from dataclasses import dataclass, field

from aiohttp import web

DEFAULT_CHUNKS = 5
PROMPT_TOKENS = 11


@dataclass
class Seen:
    """What the upstream saw: one entry per request, for assertions."""

    authorizations: list[str | None] = field(default_factory=list)
    credential_headers: list[dict[str, str]] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    client_ports: list[int] = field(default_factory=list)  # the same port = a reused connection
    body_sizes: list[int] = field(default_factory=list)
    last_chunk_sent_at: list[float] = field(default_factory=list)
    cancelled: int = 0


def _behaviour(request: web.BaseRequest) -> dict[str, str]:
    raw = request.headers.get("x-fake-behaviour", "")
    steps: dict[str, str] = {}
    for item in raw.split(","):
        name, _, value = item.strip().partition(":")
        if name:
            steps[name] = value
    return steps


def _chat_chunk(model: str, delta: dict[str, object], finish: str | None, usage: bool) -> bytes:
    chunk: dict[str, object] = {
        "id": "chatcmpl-fake",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    if usage:
        chunk["usage"] = None
    return b"data: " + json.dumps(chunk).encode() + b"\n\n"


def _usage_chunk(model: str, completion_tokens: int) -> bytes:
    chunk = {
        "id": "chatcmpl-fake",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": model,
        "choices": [],
        "usage": {
            "prompt_tokens": PROMPT_TOKENS,
            "completion_tokens": completion_tokens,
            "total_tokens": PROMPT_TOKENS + completion_tokens,
        },
    }
    return b"data: " + json.dumps(chunk).encode() + b"\n\n"


def _chat_body(model: str) -> dict[str, object]:
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": 1700000000,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "pong"},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": PROMPT_TOKENS, "completion_tokens": 1, "total_tokens": 12},
    }


def _response_body(model: str, text: str) -> dict[str, object]:
    return {
        "id": "resp_fake",
        "object": "response",
        "created_at": 1700000000,
        "status": "completed",
        "model": model,
        "output": [
            {
                "type": "message",
                "id": "msg_fake",
                "status": "completed",
                "role": "assistant",
                "content": [{"type": "output_text", "text": text, "annotations": []}],
            }
        ],
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
        "usage": {
            "input_tokens": PROMPT_TOKENS,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": 2,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": PROMPT_TOKENS + 2,
        },
    }


class FakeUpstream:
    """The request handler; `seen` collects what arrived."""

    def __init__(self) -> None:
        self.seen = Seen()

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        seen = self.seen
        seen.authorizations.append(request.headers.get("Authorization"))
        seen.credential_headers.append(
            {k: v for k, v in request.headers.items() if k.lower() in ("api-key", "x-api-key")}
        )
        seen.paths.append(request.path_qs)
        peer = request.transport.get_extra_info("peername") if request.transport else None
        seen.client_ports.append(peer[1] if peer else 0)
        steps = _behaviour(request)
        body = await request.read()
        seen.body_sizes.append(len(body))
        if "drop" in steps:
            assert request.transport is not None
            request.transport.close()
            return web.Response()
        if "slow" in steps:
            try:
                await asyncio.sleep(float(steps["slow"]))
            except asyncio.CancelledError:
                seen.cancelled += 1
                raise
        if not request.headers.get("Authorization", "").startswith("Bearer "):
            missing = {"message": "You didn't provide an API key.", "type": "invalid_request_error"}
            return web.json_response({"error": {**missing, "code": "missing_api_key"}}, status=401)
        if "status" in steps:
            status = int(steps["status"])
            error = {"error": {"message": f"fake {status}", "type": "fake", "code": str(status)}}
            return web.json_response(error, status=status)
        is_json = request.content_type == "application/json"
        document = json.loads(body) if body and is_json else {}
        model = str(document.get("model", "gpt-4o-mini"))
        path = request.path
        if path.endswith("/chat/completions"):
            if document.get("stream"):
                return await self._chat_stream(request, model, document, steps)
            return self._json(request, _chat_body(model), steps)
        if path.endswith("/embeddings"):
            inputs = document.get("input", "")
            count = len(inputs) if isinstance(inputs, list) else 1
            data = [
                {"object": "embedding", "index": i, "embedding": [0.1, 0.2, 0.3]}
                for i in range(count)
            ]
            usage = {"prompt_tokens": 3 * count, "total_tokens": 3 * count}
            return self._json(
                request, {"object": "list", "data": data, "model": model, "usage": usage}, steps
            )
        if path.endswith("/models"):
            models = [
                {"id": m, "object": "model", "created": 1700000000, "owned_by": "fake"}
                for m in ("gpt-4o-mini", "text-embedding-3-small")
            ]
            return web.json_response({"object": "list", "data": models})
        if path.endswith("/responses"):
            if document.get("stream"):
                return await self._responses_stream(request, model, steps)
            return self._json(request, _response_body(model, "pong"), steps)
        unknown: dict[str, object] = {"message": f"unknown path {path}", "type": "fake"}
        return web.json_response({"error": unknown}, status=404)

    def _json(
        self, request: web.BaseRequest, document: dict[str, object], steps: dict[str, str]
    ) -> web.Response:
        payload = json.dumps(document).encode()
        if "gzip" in steps and "gzip" in request.headers.get("Accept-Encoding", ""):
            return web.Response(
                body=gzip.compress(payload),
                headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
            )
        return web.Response(body=payload, content_type="application/json")

    async def _chat_stream(
        self,
        request: web.BaseRequest,
        model: str,
        document: dict[str, object],
        steps: dict[str, str],
    ) -> web.StreamResponse:
        options = document.get("stream_options")
        usage = isinstance(options, dict) and bool(options.get("include_usage"))
        chunks = int(steps.get("chunks", DEFAULT_CHUNKS))
        delay = float(steps.get("chunk-delay", 0))
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        try:
            await response.write(_chat_chunk(model, {"role": "assistant"}, None, usage))
            for i in range(chunks):
                if delay:
                    await asyncio.sleep(delay)
                if "drop-mid-stream" in steps and i == chunks // 2:
                    assert request.transport is not None
                    request.transport.close()
                    return response
                await response.write(_chat_chunk(model, {"content": f"w{i} "}, None, usage))
            await response.write(_chat_chunk(model, {}, "stop", usage))
            if usage:
                await response.write(_usage_chunk(model, chunks))
            await response.write(b"data: [DONE]\n\n")
            self.seen.last_chunk_sent_at.append(time.perf_counter())
            if "linger" in steps:
                await asyncio.sleep(float(steps["linger"]))
            await response.write_eof()
        except asyncio.CancelledError:
            self.seen.cancelled += 1
            raise
        return response

    async def _responses_stream(
        self, request: web.BaseRequest, model: str, steps: dict[str, str]
    ) -> web.StreamResponse:
        chunks = int(steps.get("chunks", DEFAULT_CHUNKS))
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        text = "".join(f"w{i} " for i in range(chunks))
        created = _response_body(model, "")
        created["status"] = "in_progress"
        created["output"] = []
        events: list[tuple[str, dict[str, object]]] = [
            ("response.created", {"response": created}),
        ]
        events += [
            (
                "response.output_text.delta",
                {"item_id": "msg_fake", "output_index": 0, "content_index": 0, "delta": f"w{i} "},
            )
            for i in range(chunks)
        ]
        events.append(("response.completed", {"response": _response_body(model, text)}))
        for number, (kind, data) in enumerate(events):
            data = {"type": kind, "sequence_number": number, **data}
            await response.write(f"event: {kind}\ndata: {json.dumps(data)}\n\n".encode())
        await response.write_eof()
        return response


async def start_fake_upstream(
    host: str = "127.0.0.1", port: int = 0
) -> tuple[web.ServerRunner, FakeUpstream, int]:
    """Listen on loopback; returns the runner (to clean up), the fake, and its port."""
    fake = FakeUpstream()
    runner = web.ServerRunner(web.Server(fake.handle, handler_cancellation=True), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port, backlog=1024)
    await site.start()
    return runner, fake, int(runner.addresses[0][1])


def main() -> None:
    """`python -m bench.fake_upstream PORT`: serve until killed (used by the benchmark)."""
    import sys

    import uvloop

    async def forever() -> None:
        _, _, port = await start_fake_upstream(port=int(sys.argv[1]) if len(sys.argv) > 1 else 0)
        print(port, flush=True)
        await asyncio.Event().wait()

    uvloop.run(forever())


if __name__ == "__main__":
    main()
