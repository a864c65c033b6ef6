"""Issue 18: cheap requests that hurt the whole pod, answered per finding.

Raw sockets where an HTTP client would tidy the request up first; the official
openai SDK for the legitimate calls that must keep working.
"""

import contextlib
import socket
import time
import zlib
from collections.abc import Callable
from contextlib import ExitStack

import httpx
import openai
import pytest

from tests.proxy.support import ProxyHandle, Upstream

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


def seconds_until_closed(sock: socket.socket, limit: float) -> float:
    """How long until the peer closes (what it sends is read and dropped)."""
    began = time.monotonic()
    sock.settimeout(0.05)
    while time.monotonic() - began < limit:
        try:
            if not sock.recv(65536):
                break
        except TimeoutError:
            continue
        except ConnectionError:
            break
    return time.monotonic() - began


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
        assert too_big.headers["connection"] == "close"
        assert client.get("/healthz").status_code == 200  # was "Server disconnected"
    with open_upload(proxy, 200_000, b"x" * 200_000) as sock:  # a raw client: no hang either
        answer = sock.recv(65536)
        assert answer.startswith(b"HTTP/1.1 413")
        assert "connection: close" in head_of(answer)
        assert seconds_until_closed(sock, 5) < 3  # was: nothing, then closed after 10 s


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
