"""The benchmark's own parts whose mistakes would silently skew its numbers.

The /proc reader (a command name with spaces or parentheses shifts the fields),
the lean client's response framing against the bench upstream (a misparsed body
would desynchronise keep-alive connections), the nginx config's proxy settings, and the
"features off" proxy row (it must still forward, and really skip what it says it skips).
"""

import asyncio
import json
from pathlib import Path

import httpx

from bench.cpu import TICKS_PER_S, cpu_busy_seconds, cpu_seconds, descendants
from bench.nginx import nginx_config
from bench.rawclient import ResponseReader, build_post, connect
from bench.report import FEATURES_OFF
from bench.targets import LOAD_CPU, ROOT, ProxySpec, spawn_printing_port, start_proxy
from bench.upstream import UpstreamProtocol


def fake_proc(tmp_path: Path, pid: int, ppid: int, comm: str, utime: int, stime: int) -> None:
    entry = tmp_path / str(pid)
    entry.mkdir()
    fields = ["S", str(ppid)] + ["0"] * 9 + [str(utime), str(stime)] + ["0"] * 10
    (entry / "stat").write_text(f"{pid} ({comm}) " + " ".join(fields) + "\n")


def test_cpu_of_a_process_tree_with_awkward_names(tmp_path: Path) -> None:
    fake_proc(tmp_path, 10, 1, "python -m proxy", 150, 50)
    fake_proc(tmp_path, 11, 10, "worker (1) )", 30, 20)
    fake_proc(tmp_path, 12, 11, "grandchild", 1, 0)
    fake_proc(tmp_path, 20, 1, "unrelated", 999, 999)
    assert descendants(10, tmp_path) == [10, 11, 12]
    assert cpu_seconds(11, tmp_path) == 50 / TICKS_PER_S
    assert cpu_seconds(99, tmp_path) == 0.0  # gone: counts nothing, raises nothing


def test_cpu_busy_leaves_out_idle_and_iowait(tmp_path: Path) -> None:
    (tmp_path / "stat").write_text(
        "cpu  9 9 9 9 9 9 9 9 0 0\ncpu0 1 2 3 100 200 4 5 6 0 0\ncpu1 7 0 0 50 0 0 0 0 0 0\n"
    )
    assert cpu_busy_seconds(0, tmp_path) == (1 + 2 + 3 + 4 + 5 + 6) / TICKS_PER_S
    assert cpu_busy_seconds(1, tmp_path) == 7 / TICKS_PER_S


def test_reader_finds_response_ends_across_split_reads() -> None:
    reader = ResponseReader()
    sized = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"
    assert not reader.feed(sized[:20])
    assert reader.feed(sized[20:])
    assert reader.status == 200
    reader.reset()
    chunked = b"HTTP/1.1 429 X\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
    for byte in chunked[:-1]:
        assert not reader.feed(bytes([byte]))
    assert reader.feed(chunked[-1:])
    assert reader.status == 429
    assert reader.buffer == bytearray()  # nothing of the next response eaten


async def test_upstream_answers_chat_and_streams_on_one_connection() -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(UpstreamProtocol, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    auth = {"Authorization": "Bearer sk-test", "x-fake-behaviour": "chunks:3"}
    try:
        connection = await connect("127.0.0.1", port)
        for body in (
            {"model": "m"},
            {"model": "m", "stream": True, "stream_options": {"include_usage": True}},
            {"model": "m"},
        ):
            _, _, raw = build_post(url, json.dumps(body).encode(), auth)
            assert await connection.request(raw) == 200
        _, _, anonymous = build_post(url, b"{}", {})
        assert await connection.request(anonymous) == 401
        assert not connection.lost
        # The stream itself: chunked SSE with the usage event and [DONE] last.
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        _, _, raw = build_post(
            url, b'{"stream": true, "stream_options": {"include_usage": true}}', auth
        )
        writer.write(raw)
        head = await reader.readuntil(b"\r\n\r\n")
        assert b"Transfer-Encoding: chunked" in head
        text = (await reader.readuntil(b"0\r\n\r\n")).decode()
        assert text.count("w") >= 3
        assert '"completion_tokens":3' in text
        assert text.rstrip().endswith("data: [DONE]\n\n\r\n0")
        writer.close()
    finally:
        server.close()


def test_nginx_config_keeps_connections_and_swaps_the_key(tmp_path: Path) -> None:
    config = nginx_config(tmp_path, 8081, 9091, "sk-fake")
    for line in (
        "listen 127.0.0.1:8081",
        "server 127.0.0.1:9091;",
        "keepalive 2048;",
        "proxy_http_version 1.1;",
        'proxy_set_header Connection "";',
        'proxy_set_header Authorization "Bearer sk-fake";',
        "proxy_buffering off;",
        "master_process off;",
        "daemon off;",
        f"access_log {tmp_path}/access.log;",
    ):
        assert line in config


def test_features_off_row_forwards_with_log_metrics_and_usage_stubbed(tmp_path: Path) -> None:
    """The "proxy (features off)" row, started as the benchmark starts it: it forwards like
    the proxy, but writes no call line and records no series or tokens."""
    key_file = tmp_path / "key"
    key_file.write_text("sk-bench-FAKEKEY-stub")
    log_path = tmp_path / "proxy.log"
    upstream, upstream_port = spawn_printing_port(["-m", "bench.upstream"], LOAD_CPU)
    spec = ProxySpec(FEATURES_OFF, tree=ROOT, features_off=True)
    try:
        proxy, _ = start_proxy(spec, f"http://127.0.0.1:{upstream_port}/v1", key_file, log_path)
        try:
            chat = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
            reply = httpx.post(f"{proxy.base_url}/chat/completions", json=chat, timeout=10)
            assert reply.status_code == 200
            assert reply.json()["usage"]["completion_tokens"] == 1  # forwarded as it came
            metrics = httpx.get(proxy.base_url.removesuffix("/v1") + "/metrics", timeout=10).text
            assert "llm_proxy_requests_total{" not in metrics
            assert "llm_proxy_tokens_total{" not in metrics
        finally:
            proxy.stop()
    finally:
        upstream.terminate()
        upstream.wait(timeout=30)
    events = [json.loads(line)["event"] for line in log_path.read_text().splitlines() if line]
    assert "listening" in events
    assert "call" not in events
