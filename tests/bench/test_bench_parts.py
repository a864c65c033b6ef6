"""The benchmark's own parts whose mistakes would silently skew its numbers.

The /proc reader (a command name with spaces or parentheses shifts the fields),
the lean client's response framing against the bench upstream (a misparsed body
would desynchronise keep-alive connections), the nginx config's proxy settings, the
bare passthrough (it must stream, not buffer), the held-streams parts: stamped
events, the load's counting of what arrived, was lost or reordered, and the report; and
the identity row's token, which the proxy must verify and attribute (not answer 401).

Marked `bench`: `make test` runs none of these (`make bench` installs what they need).
"""

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import httpx
import pytest
from aiohttp import web

from bench import held_report, passthrough
from bench.cpu import TICKS_PER_S, cpu_busy_seconds, cpu_seconds, descendants
from bench.heldload import held_load
from bench.issuer import BenchIdentity
from bench.loadgen import bearer
from bench.nginx import nginx_config
from bench.rawclient import ResponseReader, build_post, connect
from bench.targets import LOAD_CPU, ProxySpec, spawn_printing_port, start_proxy
from bench.upstream import UpstreamProtocol
from fakes.kubelet_secret_dir import KubeletSecretDir

pytestmark = pytest.mark.bench


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


@asynccontextmanager
async def bare_passthrough() -> AsyncIterator[str]:
    """bench.passthrough's aiohttp row in front of the bench upstream: its chat URL."""
    loop = asyncio.get_running_loop()
    upstream = await loop.create_server(UpstreamProtocol, "127.0.0.1", 0)
    upstream_port = upstream.sockets[0].getsockname()[1]
    handle, close = passthrough.aiohttp_handler(f"http://127.0.0.1:{upstream_port}/v1")
    runner = web.ServerRunner(web.Server(handle), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}/v1/chat/completions"
    finally:
        await runner.cleanup()
        await close()
        upstream.close()


STREAM = {"model": "m", "stream": True, "stream_options": {"include_usage": True}}


async def test_bare_passthrough_forwards_and_streams_each_event_as_it_comes() -> None:
    """bench.passthrough's row: the first event must reach the client long before the last."""
    loop = asyncio.get_running_loop()
    auth = {"Authorization": "Bearer sk-test", "x-fake-behaviour": "chunks:4,chunk-delay:0.1"}
    async with (
        bare_passthrough() as url,
        aiohttp.ClientSession() as http,
        http.post(url, json=STREAM, headers=auth) as response,
    ):
        assert response.content_type == "text/event-stream"
        arrivals = [(loop.time(), line) async for line in response.content if line.strip()]
    assert arrivals[-1][1] == b"data: [DONE]\n"
    assert json.loads(arrivals[-2][1][6:])["usage"]["completion_tokens"] == 4
    assert arrivals[-1][0] - arrivals[0][0] >= 0.3  # 4 events 0.1 s apart, not one burst


async def test_bare_passthrough_takes_a_caller_hanging_up_mid_stream_quietly(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A held-streams run ends by closing its streams: no traceback per stream in the log."""
    slow = {"Authorization": "Bearer sk-test", "x-fake-behaviour": "chunks:40,chunk-delay:0.05"}
    async with bare_passthrough() as url:
        for _ in range(3):
            async with aiohttp.ClientSession() as http:
                response = await http.post(url, json=STREAM, headers=slow)
                assert (await response.content.readline()).startswith(b"data: ")
                response.close()  # hang up with the stream half sent
        await asyncio.sleep(0.3)  # the passthrough's next writes meet the closed connection
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


async def test_stamped_events_carry_their_index_and_send_time_and_are_counted() -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(UpstreamProtocol, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    headers = {"Authorization": "Bearer x", "x-fake-behaviour": "chunks:5,chunk-delay:0.02,stamp:1"}
    try:
        async with aiohttp.ClientSession() as http:
            before = await (await http.get(f"http://127.0.0.1:{port}/__stats")).json()
            async with http.post(url, json={"stream": True}, headers=headers) as response:
                events = [
                    (time.monotonic_ns(), json.loads(line[6:]))
                    async for line in response.content
                    if line.startswith(b"data: {") and b'"seq"' in line
                ]
            after = await (await http.get(f"http://127.0.0.1:{port}/__stats")).json()
    finally:
        server.close()
    assert [event["seq"] for _, event in events] == [0, 1, 2, 3, 4]
    sent = [event["sent"] for _, event in events]
    assert sorted(sent) == sent
    assert sent[-1] - sent[0] >= 75_000_000  # 20 ms apart, as the behaviour asked
    assert all(0 <= arrived - event["sent"] < 1_000_000_000 for arrived, event in events)
    assert after["sent"] - before["sent"] == 5


async def test_held_load_counts_chunks_and_sees_no_failure_against_the_upstream() -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(UpstreamProtocol, "127.0.0.1", 0)
    upstream = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/v1"
    spec = {"url": upstream, "upstream": upstream, "streams": 20, "chunks": 10, "delay": 0.02,
            "ramp": 0.2, "warmup": 0.3, "window": 1.0}  # fmt: skip
    try:
        result = await held_load(spec)
    finally:
        server.close()
    # 20 streams at 50 chunks/s for 1 s: ~1,000 chunks, every one accounted for.
    assert 800 <= result["received"] <= 1200
    assert abs(result["received"] - result["sent"]) <= 40
    assert (result["refused"], result["cut"], result["lost"], result["reordered"]) == (0, 0, 0, 0)
    assert result["completions"] >= 20
    assert 0 < result["p50_ms"] < 20


def test_held_report_replaces_only_its_own_section(tmp_path: Path) -> None:
    path = tmp_path / "RESULTS.md"
    path.write_text("# T\n\n## A\n\na\n\n## Held streams\n\nold\n\n### N = 1\n\nx\n\n## B\n\nb\n")
    held_report.replace_section(path, "## Held streams\n\nnew\n")
    assert path.read_text() == "# T\n\n## A\n\na\n\n## Held streams\n\nnew\n\n## B\n\nb\n"


def held_result(n: int, cpu_s: float, refused: int = 0) -> dict[str, object]:
    return {
        "streams": n, "received": 1000, "sent": 1000, "cpu_s": {"target": cpu_s},
        "p99_ms": 1.0, "rss_peak_kib": 20 * n + 100, "rss_idle_kib": 100, "refused": refused,
        "cut": 0, "lost": 0, "reordered": 0, "connect_errors": 0,
    }  # fmt: skip


def test_held_goals_are_read_at_a_thousand_streams_and_defaults_at_the_largest_n() -> None:
    runs = {
        f"{held_report.DIRECT}|1000": [held_result(1000, 0)],
        f"{held_report.NGINX}|1000": [held_result(1000, 0.010)],
        f"{held_report.PROXY}|1000": [held_result(1000, 0.014)],
        f"{held_report.NGINX}|2000": [held_result(2000, 0.010)],
        f"{held_report.PROXY}|2000": [held_result(2000, 0.030)],
        f"{held_report.DEFAULTS}|2000": [held_result(2000, 0.030, refused=3)],
    }
    rows = held_report.goals(held_report.Held({"streams": [1000, 2000], "runs": runs}))
    assert rows[0].startswith("| goal at N=1000 ")
    assert "| 1.40x | met |" in rows[3]
    assert rows[-2] == (
        "| default maxInFlight holds N | 0 refused | 3 refused at N=2000 | **not met** |"
    )


def test_identity_row_sends_a_token_the_proxy_verifies_and_attributes(tmp_path: Path) -> None:
    """The identity row must measure verified, attributed, budgeted calls, not 401s."""
    identity = BenchIdentity.create(tmp_path)
    secret = KubeletSecretDir(tmp_path / "secret")
    secret.write("sk-bench-FAKEKEY-identity")
    upstream, upstream_port = spawn_printing_port(["-m", "bench.upstream"], LOAD_CPU)
    issuer, issuer_port = spawn_printing_port(
        ["-m", "bench.issuer", str(identity.jwks_file)], LOAD_CPU
    )
    spec = ProxySpec("identity", env=identity.proxy_env(issuer_port))
    log = tmp_path / "proxy.log"
    target, _ = start_proxy(spec, f"http://127.0.0.1:{upstream_port}/v1", secret.key_file, log)
    try:
        url = target.base_url + "/chat/completions"
        body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "ping"}]}
        token = bearer({"token_file": str(identity.caller_token_file)})
        assert token.count(".") == 2  # a JWT, read from the file
        served = httpx.post(url, json=body, headers={"Authorization": f"Bearer {token}"})
        refused = httpx.post(url, json=body, headers={"Authorization": "Bearer sk-bench-dummy"})
        assert (served.status_code, refused.status_code) == (200, 401)
    finally:
        target.stop()
        for process in (issuer, upstream):
            process.terminate()
            process.wait(timeout=30)
    calls = [json.loads(line) for line in log.read_text().splitlines() if '"call"' in line]
    assert [(c["client"], c["status"]) for c in calls] == [("bench", 200), ("anonymous", 401)]
    assert calls[0]["promptTokens"] > 0  # charged against the client's token budget
