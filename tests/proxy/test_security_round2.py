"""Cheap requests that hurt the whole pod, one test per attack.

Raw sockets where an HTTP client would tidy the request up first; the official
openai SDK for the legitimate calls that must keep working.
"""

import contextlib
import json
import socket
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import ExitStack

import httpx
import openai
import pytest
from aiohttp import web

from proxy.observability import MAX_CALL_TOKENS
from tests.support.net import seconds_until_closed
from tests.support.proxy import LoopThread, ProxyHandle, Upstream, assert_openai_error, metric

MIB = 1024 * 1024


def chat(proxy: ProxyHandle) -> str | None:
    client = openai.OpenAI(base_url=proxy.base_url, api_key="unused", max_retries=0, timeout=10)
    reply = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
    )
    return reply.choices[0].message.content


def open_upload(proxy: ProxyHandle, declared: int, sent: bytes) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", proxy.running.port), timeout=10)
    head = (
        "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {declared}\r\n\r\n"
    ).encode()
    sock.sendall(head + sent)
    return sock


# -- 1: nothing is reserved or allocated before the bytes arrive --------------------------


def test_declared_but_unsent_bodies_hold_no_budget(
    start_proxy: Callable[..., ProxyHandle], upstream: Upstream
) -> None:
    proxy = start_proxy(max_buffered_bytes=64 * MIB, max_body_bytes=16 * MIB)
    with ExitStack() as stack:
        for _ in range(4):  # 4 x 16 MiB declared = the whole budget, one byte each sent
            stack.enter_context(open_upload(proxy, 16 * MIB, b"{"))
        time.sleep(0.2)
        assert proxy.running.state.forwarder.buffers.used == 4
        assert chat(proxy) is not None  # was 503 proxy_overloaded for a minute


def test_a_body_below_the_minimum_rate_is_cut_after_the_grace(
    start_proxy: Callable[..., ProxyHandle], upstream: Upstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("proxy.forward.RATE_GRACE_SECONDS", 0.3)
    proxy = start_proxy(min_body_rate=1000, body_timeout=30, max_in_flight=1)
    with open_upload(proxy, 100_000, b'{"model"') as sock:
        held = seconds_until_closed(sock, 10)
    assert held < 2  # 0.3 s grace + 8 bytes at 1000 B/s; was the 30 s body deadline
    assert chat(proxy) is not None  # the slot is free again


def test_a_body_keeping_the_minimum_rate_is_served(
    start_proxy: Callable[..., ProxyHandle], upstream: Upstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("proxy.forward.RATE_GRACE_SECONDS", 0.2)
    proxy = start_proxy(min_body_rate=2000)
    body = b'{"model":"gpt-4o-mini","messages":[],"pad":"' + b"x" * 1950 + b'"}'
    with open_upload(proxy, len(body), b"") as sock:
        for start in range(0, len(body), 500):  # ~5000 B/s, for ~0.4 s, past the grace
            sock.sendall(body[start : start + 500])
            time.sleep(0.1)
        sock.settimeout(5)
        assert sock.recv(65536).startswith(b"HTTP/1.1 200")


# -- 2 and 15: no answer leaves an unread body to the loop; it says it closes -------------


def gzip_bomb(megabytes: int) -> bytes:
    """A gzip stream of `megabytes` MiB of zeros (about 1 kB on the wire per MiB)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    zeros = bytes(MIB)
    first = compressor.compress(zeros) + compressor.flush(zlib.Z_FULL_FLUSH)
    repeat = compressor.compress(zeros) + compressor.flush(zlib.Z_FULL_FLUSH)
    return first + repeat * (megabytes - 1)


def head_of(answer: bytes) -> str:
    return answer.partition(b"\r\n\r\n")[0].decode().lower()


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/nowhere", "/metrics-port"])
def test_an_answer_that_does_not_read_the_body_closes_without_inflating_it(
    start_proxy: Callable[..., ProxyHandle], path: str
) -> None:
    proxy = start_proxy(metrics_port=0)
    port = proxy.running.port
    if path == "/metrics-port":
        port, path = proxy.running.metrics_port or 0, "/elsewhere"
    bomb = gzip_bomb(1024)  # ~1 MB on the wire, 1 GiB inflated
    head = (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Encoding: gzip\r\nContent-Length: {len(bomb) * 2}\r\n\r\n"
    ).encode()
    cpu = time.process_time()
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(head + bomb[: len(bomb) // 2])
        answer = sock.recv(65536)
        assert "connection: close" in head_of(answer), answer[:300]
        with contextlib.suppress(OSError):  # closed already: fine
            sock.sendall(bomb[len(bomb) // 2 :] + bomb)
        began = time.monotonic()
        assert httpx.get(proxy.root_url + "/healthz", timeout=10).status_code == 200
        assert time.monotonic() - began < 0.5  # the loop is not busy inflating
        assert seconds_until_closed(sock, 5) < 3  # closed after the linger, not held open
    assert time.process_time() - cpu < 1.0  # was 4-5 s of CPU for 2 GiB inflated


def test_an_overload_503_before_the_body_closes_the_connection(
    start_proxy: Callable[..., ProxyHandle], upstream: Upstream
) -> None:
    proxy = start_proxy(max_in_flight=1, body_timeout=5)
    with open_upload(proxy, 1000, b"{") as holder:  # takes the only slot
        time.sleep(0.1)
        with open_upload(proxy, 1000, b'{"model":') as refused:
            answer = refused.recv(65536)
            assert answer.startswith(b"HTTP/1.1 503"), answer[:200]
            assert "connection: close" in head_of(answer)
            assert seconds_until_closed(refused, 5) < 3
        holder.close()


def test_after_a_413_a_keep_alive_client_just_carries_on(
    start_proxy: Callable[..., ProxyHandle], upstream: Upstream
) -> None:
    proxy = start_proxy(max_body_bytes=100_000)
    with httpx.Client(base_url=proxy.root_url, timeout=5) as client:
        too_big = client.post(
            "/v1/chat/completions", content=b"x" * 200_000, headers={"content-type": "text/plain"}
        )
        assert too_big.status_code == 413
        assert client.get("/healthz").status_code == 200  # was "Server disconnected"
    with open_upload(proxy, 200_000, b"x" * 1000) as sock:  # the rest never sent
        answer = sock.recv(65536)
        assert answer.startswith(b"HTTP/1.1 413")
        assert "connection: close" in head_of(answer)  # was missing
        assert seconds_until_closed(sock, 5) < 3  # was: nothing, then closed after 10 s


def test_after_a_413_for_a_whole_body_the_next_request_is_answered_or_refused_plainly(
    start_proxy: Callable[..., ProxyHandle],
) -> None:
    """Sent whole, the body may be in the proxy before it answers (then the connection
    stays usable) or not (then the answer says `Connection: close`): never a silent hang."""
    proxy = start_proxy(max_body_bytes=100_000)
    with open_upload(proxy, 200_000, b"x" * 200_000) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        sock.settimeout(3)
        received = b""
        with contextlib.suppress(ConnectionError):
            while chunk := sock.recv(65536):
                received += chunk
                if received.count(b"HTTP/1.1 ") == 2 and received.endswith(b"}"):
                    break
        first, _, rest = received.partition(b"\r\n\r\n")
        assert first.startswith(b"HTTP/1.1 413")
        if "connection: close" not in first.decode().lower():
            assert b"HTTP/1.1 200" in rest  # kept alive: the next request was answered


def test_a_body_read_whole_keeps_the_connection_alive(proxy: ProxyHandle) -> None:
    with httpx.Client(base_url=proxy.root_url, timeout=5) as client:
        first = client.post("/v1/chat/completions", json={"model": "gpt-4o-mini"})
        assert "connection" not in first.headers or first.headers["connection"] != "close"
        second = client.post("/v1/chat/completions", json={"model": "gpt-4o-mini"})
        assert second.status_code == 200


# -- 4: idle keep-alive connections are timed --------------------------------------------


def test_an_idle_keep_alive_connection_closes_after_the_idle_timeout(
    start_proxy: Callable[..., ProxyHandle],
) -> None:
    proxy = start_proxy(idle_timeout=0.5, header_timeout=30)
    with socket.create_connection(("127.0.0.1", proxy.running.port), timeout=5) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert sock.recv(65536).startswith(b"HTTP/1.1 200")
        held = seconds_until_closed(sock, 5)
    assert 0.3 < held < 2  # was aiohttp's default of 3630 s


# -- 8: the metrics port has the API port's guards ---------------------------------------


def test_the_metrics_port_answers_bad_http_openai_shaped_without_echo(
    start_proxy: Callable[..., ProxyHandle],
) -> None:
    proxy = start_proxy(metrics_port=0, header_timeout=0.5)
    port = proxy.running.metrics_port
    assert port is not None
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nBad Header<script>: 1\r\n\r\n")
        answer = sock.recv(65536)
    assert answer.split(b" ", 2)[1] == b"400"
    assert b"invalid_request" in answer
    assert b"<script>" not in answer
    with socket.create_connection(("127.0.0.1", port), timeout=5) as slow:
        slow.sendall(b"GET /metrics HTTP/1.1\r\n")  # never finishes its head
        assert seconds_until_closed(slow, 5) < 2  # the head deadline


# -- 5: one response cannot break /metrics; 9: every logged field is bounded --------------


@pytest.fixture
def huge_usage_upstream(upstream_loop: LoopThread) -> Iterator[str]:
    """An upstream whose usage reports a 400-digit prompt_tokens."""
    digits = "9" * 400

    async def handle(request: web.BaseRequest) -> web.Response:
        await request.read()
        usage = f'{{"prompt_tokens":{digits},"completion_tokens":7,"total_tokens":{digits}}}'
        body = f'{{"id":"x","object":"chat.completion","choices":[],"usage":{usage}}}'
        return web.Response(body=body.encode(), content_type="application/json")

    async def serve() -> tuple[web.ServerRunner, int]:
        runner = web.ServerRunner(web.Server(handle), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        return runner, int(runner.addresses[0][1])

    runner, port = upstream_loop.run(serve())
    yield f"http://127.0.0.1:{port}/v1"
    upstream_loop.run(runner.cleanup())


def test_a_400_digit_token_count_is_clamped_and_metrics_keep_working(
    start_proxy: Callable[..., ProxyHandle], huge_usage_upstream: str
) -> None:
    proxy = start_proxy(upstream=huge_usage_upstream)
    reply = httpx.post(proxy.base_url + "/chat/completions", json={"model": "gpt-4o-mini"})
    assert reply.status_code == 200
    scrape = httpx.get(proxy.root_url + "/metrics")
    assert scrape.status_code == 200  # was 500 until restart
    series = 'llm_proxy_tokens_total{kind="prompt",model="gpt-4o-mini"}'
    assert metric(scrape.text, series) == MAX_CALL_TOKENS
    assert metric(scrape.text, series.replace("prompt", "completion")) == 7
    (call,) = proxy.calls(1)
    assert call["promptTokens"] == MAX_CALL_TOKENS


def test_a_long_path_is_cut_in_the_access_log(proxy: ProxyHandle) -> None:
    path = "/v1/models/" + "\u2603" * 850  # 7.7 KB on the wire, 5 KB JSON-escaped
    assert httpx.get(proxy.root_url + path).status_code in (200, 404)
    assert len(proxy.calls(1)) == 1
    (line,) = [line for line in proxy.log_lines() if '"event":"call"' in line]
    assert len(line.encode()) < 4096  # PIPE_BUF: one atomic write between workers
    assert json.loads(line)["path"].endswith("...")


# -- 6: with an allowlist, a body that names a model is checked wherever it goes ----------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/chat/completions"),
        ("DELETE", "/chat/completions"),
        ("POST", "/chat/completions/chatcmpl-123"),
        ("POST", "/responses/resp_123/cancel"),
        ("DELETE", "/responses/resp_123"),
    ],
)
@pytest.mark.parametrize("content_type", ["application/json", "text/plain", None])
def test_a_model_in_the_body_of_a_no_model_call_is_checked(
    start_proxy: Callable[..., ProxyHandle],
    upstream: Upstream,
    method: str,
    path: str,
    content_type: str | None,
) -> None:
    proxy = start_proxy(allowed_models="gpt-4o-mini")
    headers = {} if content_type is None else {"content-type": content_type}
    refused = httpx.request(
        method, proxy.base_url + path, content=b'{"model":"o1-pro"}', headers=headers
    )
    assert_openai_error(refused, 403, "model_not_allowed")
    assert upstream.fake.seen.paths == []  # was forwarded unchecked


def test_a_no_model_call_without_a_model_in_its_body_still_passes(
    start_proxy: Callable[..., ProxyHandle], upstream: Upstream
) -> None:
    proxy = start_proxy(allowed_models="gpt-4o-mini")
    update = httpx.post(
        proxy.base_url + "/chat/completions/chatcmpl-123", json={"metadata": {"a": "b"}}
    )
    assert update.status_code == 404  # the fake upstream's answer: it was forwarded
    assert upstream.fake.seen.paths == ["/v1/chat/completions/chatcmpl-123"]


# -- 7: models inside Responses tools are checked ------------------------------------------


def responses_body(tools: list[dict[str, object]], **extra: object) -> dict[str, object]:
    return {"model": "gpt-4o-mini", "input": "draw a cat", "tools": tools, **extra}


@pytest.mark.parametrize(
    "raw_tool",
    [
        b'{"type":"image_generation","model":"gpt-image-1"}',
        b'{"type":"image_generation","MODEL":"gpt-image-1"}',
        b'{"type":"image_generation","\\u006dodel":"gpt-image-1"}',
        b'{"type":"image_generation","model":["gpt-image-1"]}',
    ],
)
def test_a_tool_that_runs_a_model_outside_the_allowlist_is_refused(
    start_proxy: Callable[..., ProxyHandle], upstream: Upstream, raw_tool: bytes
) -> None:
    proxy = start_proxy(allowed_models="gpt-4o-mini")
    body = b'{"model":"gpt-4o-mini","input":"draw a cat","tools":[' + raw_tool + b"]}"
    refused = httpx.post(
        proxy.base_url + "/responses", content=body, headers={"content-type": "application/json"}
    )
    assert_openai_error(refused, 403, "model_not_allowed")
    assert upstream.fake.seen.paths == []  # was forwarded


def test_tools_naming_allowed_models_and_schemas_with_a_model_property_pass(
    start_proxy: Callable[..., ProxyHandle], upstream: Upstream
) -> None:
    proxy = start_proxy(allowed_models="gpt-4o-mini,gpt-image-1")
    client = openai.OpenAI(base_url=proxy.base_url, api_key="unused", max_retries=0)
    client.responses.create(
        model="gpt-4o-mini",
        input="draw a cat",
        tools=[{"type": "image_generation", "model": "gpt-image-1"}],
    )
    schema: dict[str, object] = {"type": "object", "properties": {"model": {"type": "string"}}}
    client.responses.create(
        model="gpt-4o-mini",
        input="which car?",
        text={"format": {"type": "json_schema", "name": "car", "schema": schema}},
    )
    assert len(upstream.fake.seen.paths) == 2
