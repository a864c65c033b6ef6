"""Bodies stream through unbuffered, both ways, and disconnects propagate."""

import gzip
import json
import socket
import time
from collections.abc import Callable, Iterator

import httpx
import pytest

from tests.support.proxy import FAKE_KEY, ProxyHandle, Upstream

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "stream": True}


def wait_for(condition: Callable[[], bool], timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


def test_first_chunk_reaches_client_before_upstream_sends_the_last(
    proxy: ProxyHandle, upstream: Upstream
) -> None:
    arrivals: list[float] = []
    headers = {"x-fake-behaviour": "chunks:5,chunk-delay:0.1"}
    with (
        httpx.Client() as client,
        client.stream(
            "POST", proxy.base_url + "/chat/completions", json=CHAT, headers=headers
        ) as response,
    ):
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["x-accel-buffering"] == "no"
        for chunk in response.iter_raw():
            if chunk:
                arrivals.append(time.perf_counter())
    (last_sent,) = upstream.fake.seen.last_chunk_sent_at
    assert arrivals[0] < last_sent - 0.3  # first chunk was out ~0.5 s before the last
    assert len(arrivals) >= 5  # about one read per upstream write: nothing coalesced them


def test_client_disconnect_cancels_the_upstream_request(
    proxy: ProxyHandle, upstream: Upstream
) -> None:
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(
            proxy.base_url + "/chat/completions",
            json={"model": "gpt-4o-mini", "messages": []},
            headers={"x-fake-behaviour": "slow:5"},
            timeout=httpx.Timeout(5, read=0.3),
        )
    wait_for(lambda: upstream.fake.seen.cancelled == 1)
    wait_for(lambda: '"status":499' in proxy.log.getvalue())
    call = proxy.calls(1)[-1]
    assert call["error"] == "client_disconnected"


def test_upstream_dropping_mid_stream_truncates_the_client_response(
    proxy: ProxyHandle,
) -> None:
    headers = {"x-fake-behaviour": "chunks:6,chunk-delay:0.01,drop-mid-stream"}
    received: list[bytes] = []

    def read_all() -> None:
        url = proxy.base_url + "/chat/completions"
        with httpx.stream("POST", url, json=CHAT, headers=headers) as response:
            received.extend(response.iter_raw())

    with pytest.raises(httpx.RemoteProtocolError):
        read_all()
    received_bytes = b"".join(received)
    assert b"w0" in received_bytes
    assert b"[DONE]" not in received_bytes
    wait_for(lambda: "upstream_dropped" in proxy.log.getvalue())


def test_slow_first_byte_within_read_timeout_still_succeeds(proxy: ProxyHandle) -> None:
    response = httpx.post(
        proxy.base_url + "/chat/completions",
        json={"model": "gpt-4o-mini", "messages": []},
        headers={"x-fake-behaviour": "slow:0.4"},
    )
    assert response.status_code == 200
    assert response.json()["choices"][0]["message"]["content"] == "pong"


def test_gzip_from_upstream_is_decoded_and_usage_still_counted(
    proxy: ProxyHandle, upstream: Upstream
) -> None:
    response = httpx.post(
        proxy.base_url + "/chat/completions",
        json={"model": "gpt-4o-mini", "messages": []},
        headers={"x-fake-behaviour": "gzip", "accept-encoding": "identity"},
    )
    assert response.status_code == 200
    assert "content-encoding" not in response.headers
    assert response.json()["usage"]["completion_tokens"] == 1
    call = proxy.calls(1)[-1]
    assert call["promptTokens"] == 11


def test_upstream_connections_are_pooled(proxy: ProxyHandle, upstream: Upstream) -> None:
    with httpx.Client() as client:
        for _ in range(5):
            client.get(proxy.base_url + "/models").raise_for_status()
    # All five calls came over one upstream connection (the same client port).
    assert len(set(upstream.fake.seen.client_ports)) == 1
    assert upstream.fake.seen.authorizations == [f"Bearer {FAKE_KEY}"] * 5


def test_non_json_body_streams_through_unparsed(proxy: ProxyHandle, upstream: Upstream) -> None:
    upload = b"x" * 300_000

    def body() -> Iterator[bytes]:
        for i in range(0, len(upload), 65536):
            yield upload[i : i + 65536]

    response = httpx.post(
        proxy.base_url + "/files",
        content=body(),
        headers={"content-type": "application/octet-stream"},
    )
    assert response.status_code == 404  # the fake does not know /files; it did get it
    assert upstream.fake.seen.paths == ["/v1/files"]
    assert upstream.fake.seen.body_sizes == [len(upload)]
    call = proxy.calls(1)[-1]
    assert call["bytesIn"] == len(upload)


def test_expect_100_continue_is_answered_before_the_body(proxy: ProxyHandle) -> None:
    body = b'{"model": "gpt-4o-mini", "messages": []}'
    port = proxy.running.port
    with socket.create_connection(("127.0.0.1", port), timeout=3) as sock:
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Expect: 100-continue\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n"
        )
        assert sock.recv(1024).startswith(b"HTTP/1.1 100 Continue")
        sock.sendall(body)
        assert sock.recv(65536).startswith(b"HTTP/1.1 200")


def test_usage_is_counted_when_the_client_hangs_up_after_done(proxy: ProxyHandle) -> None:
    body = {**CHAT, "stream_options": {"include_usage": True}}
    headers = {"x-fake-behaviour": "linger:2"}
    received = b""
    url = proxy.base_url + "/chat/completions"
    with httpx.stream("POST", url, json=body, headers=headers) as response:
        for chunk in response.iter_raw():
            received += chunk
            if b"[DONE]" in received:
                break  # like the SDK: stop at [DONE] and close the connection
    (call,) = proxy.calls(1)
    assert call["error"] == "client_disconnected"
    assert call["status"] == 200
    assert (call["promptTokens"], call["completionTokens"]) == (11, 5)


def test_gzipped_request_body_reaches_upstream_decoded_and_labelled_so(
    proxy: ProxyHandle, upstream: Upstream
) -> None:
    # aiohttp's server inflates request bodies as it reads them, so the proxy must not
    # forward the client's Content-Encoding with the plain bytes.
    body = json.dumps({"model": "gpt-4o-mini", "messages": []}).encode()
    response = httpx.post(
        proxy.base_url + "/chat/completions",
        content=gzip.compress(body),
        headers={"content-type": "application/json", "content-encoding": "gzip"},
    )
    assert response.status_code == 200
    assert response.json()["choices"][0]["message"]["content"] == "pong"
    assert upstream.fake.seen.body_sizes == [len(body)]
