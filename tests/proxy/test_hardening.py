"""Single requests that used to hurt the pod or leak the key.

Raw sockets are used where an HTTP client would tidy up the request first.
"""

import contextlib
import socket
import time
import zlib
from collections.abc import Callable

import httpx
import pytest
from pydantic import ValidationError

from proxy.cli import main
from proxy.settings import Settings
from tests.support.proxy import FAKE_KEY, ProxyHandle, Upstream, assert_openai_error


def raw_exchange(proxy: ProxyHandle, request: bytes, timeout: float = 5) -> bytes:
    """Send bytes as they are, read until the proxy closes or `timeout` passes."""
    with socket.create_connection(("127.0.0.1", proxy.running.port), timeout=timeout) as sock:
        sock.sendall(request)
        received = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                break
            if not chunk:
                break
            received += chunk
            if b"\r\n\r\n" in received and _complete(received):
                break
        return received


def _complete(response: bytes) -> bool:
    head, _, body = response.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return len(body) >= int(line.split(b":")[1])
    return False


def closes_within(sock: socket.socket, seconds: float) -> bool:
    """True when the peer closes the connection within `seconds` (data is discarded)."""
    sock.settimeout(0.1)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if not sock.recv(65536):
                return True
        except TimeoutError:
            continue
        except ConnectionError:
            return True
    return False


# -- 5: the upstream URL is built from parts; bad upstream settings never start --------


@pytest.mark.parametrize("target", [b"/v%31/models", b"/%76%31/models", b"/v%31:1/models"])
def test_an_encoded_v1_prefix_is_refused_not_sent_elsewhere(
    start_proxy: Callable[..., ProxyHandle], upstream: Upstream, target: bytes
) -> None:
    # Before: with an upstream URL without a path, `/v%31/models` went to port <port>31.
    proxy = start_proxy(upstream=f"http://127.0.0.1:{upstream.port}")  # no path
    answer = raw_exchange(proxy, b"GET " + target + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    assert answer.startswith((b"HTTP/1.1 400", b"HTTP/1.1 404")), answer[:200]
    assert upstream.fake.seen.paths == []


@pytest.mark.parametrize("base_path", ["", "/v1", "/openai/v1/"])
def test_the_upstream_keeps_its_host_port_and_path_whatever_the_client_path(
    start_proxy: Callable[..., ProxyHandle], upstream: Upstream, base_path: str
) -> None:
    proxy = start_proxy(upstream=f"http://127.0.0.1:{upstream.port}{base_path}")
    answer = raw_exchange(proxy, b"GET /v1/mod%65ls?x=%20y HTTP/1.1\r\nHost: x\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
    prefix = base_path.rstrip("/")
    assert upstream.fake.seen.raw_paths == [f"{prefix}/mod%65ls?x=%20y"]


@pytest.mark.parametrize(
    ("upstream_url", "problem"),
    [
        ("http://user:hunter2-secret@api.example/v1", "user or password"),
        ("https://api.example/v1?api-key=hunter2-secret", "query"),
        ("http:///v1", "host"),
        ("ftp://api.example/v1", "http"),
    ],
)
def test_bad_upstream_urls_are_refused_at_start_without_echoing_them(
    upstream_url: str, problem: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(ValidationError) as refused:
        Settings(upstream=upstream_url)
    messages = [error["msg"] for error in refused.value.errors()]
    assert problem in " ".join(messages)
    assert not any("hunter2" in message for message in messages)
    assert main(["serve", "--upstream", upstream_url, "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert "LLM_PROXY_UPSTREAM" in err
    assert "hunter2" not in err


# -- 6: request bodies have a deadline ----------------------------------------------------


@pytest.mark.parametrize("content_type", ["application/json", "application/octet-stream"])
def test_a_body_that_never_finishes_gets_408_and_frees_its_slot(
    start_proxy: Callable[..., ProxyHandle], upstream: Upstream, content_type: str
) -> None:
    proxy = start_proxy(body_timeout=0.5, max_in_flight=1)
    head = (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: {content_type}\r\n"
        "Content-Length: 1000\r\n\r\n"
    ).encode()
    began = time.monotonic()
    answer = raw_exchange(proxy, head + b'{"model": "gpt-4o-mini"', timeout=5)
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert time.monotonic() - began < 3
    assert b'"request_timeout"' in answer
    assert httpx.get(proxy.base_url + "/models").status_code == 200  # the slot is free


# -- 9: a body inflating past the cap stops being read ---------------------------------------


def gzip_bomb_segments(segments: int) -> tuple[bytes, bytes]:
    """A gzip stream start and one repeatable deflate segment of 1 MiB of zeros each."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    zeros = bytes(1024 * 1024)
    first = compressor.compress(zeros) + compressor.flush(zlib.Z_FULL_FLUSH)
    repeat = compressor.compress(zeros) + compressor.flush(zlib.Z_FULL_FLUSH)
    return first, repeat


def test_gzip_body_past_the_cap_is_not_inflated_any_further(
    start_proxy: Callable[..., ProxyHandle],
) -> None:
    proxy = start_proxy(max_body_bytes=1024 * 1024)
    first, repeat = gzip_bomb_segments(3000)
    rest = repeat * 3000  # ~3 GiB once inflated, ~3 MB on the wire
    head = (
        "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Encoding: gzip\r\nContent-Length: {len(first) + len(rest)}\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", proxy.running.port), timeout=5) as sock:
        sock.sendall(head + first + repeat * 2)
        answer = sock.recv(65536)
        assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
        cpu = time.process_time()
        sock.settimeout(5)
        with contextlib.suppress(ConnectionError):  # closed already: even better
            sock.sendall(rest)
        began = time.monotonic()
        health = httpx.get(proxy.root_url + "/healthz", timeout=10)
        assert health.status_code == 200
        assert time.monotonic() - began < 0.5  # the loop is not busy inflating
        time.sleep(0.5)
        assert time.process_time() - cpu < 1.0  # nor is any thread


# -- 11: dot segments and non-API methods ------------------------------------------------


@pytest.mark.parametrize(
    "target",
    [
        b"/v1/../../admin",
        b"/v1/%2e%2e/%2e%2e/admin",
        b"/v1/%2E%2E/models",
        b"/v1/./models",
        b"/v1/models/%2f..%2fadmin",
        b"/v1/models%5c..%5cadmin",
    ],
)
def test_dot_segments_and_encoded_separators_are_refused(
    proxy: ProxyHandle, upstream: Upstream, target: bytes
) -> None:
    answer = raw_exchange(proxy, b"GET " + target + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    assert answer.startswith((b"HTTP/1.1 400", b"HTTP/1.1 404")), answer[:200]
    assert b"application/json" in answer
    assert upstream.fake.seen.paths == []


@pytest.mark.parametrize("method", ["TRACE", "CONNECT", "OPTIONS", "PUT", "PATCH", "PROPFIND"])
def test_methods_the_api_does_not_use_are_refused(
    proxy: ProxyHandle, upstream: Upstream, method: str
) -> None:
    response = httpx.request(method, proxy.base_url + "/models")
    if method == "CONNECT":  # its target is read as host:port, so it is not a /v1 path
        assert_openai_error(response, 404, "not_found")
    else:
        assert_openai_error(response, 405, "method_not_allowed")
    assert upstream.fake.seen.paths == []


# -- 12: what crosses upstream is decided per header ----------------------------------------


def test_billing_cookie_and_forwarding_headers_stay_behind(
    proxy: ProxyHandle, upstream: Upstream
) -> None:
    headers = {
        "OpenAI-Organization": "org-attacker",
        "OpenAI-Project": "proj_attacker",
        "Cookie": "session=abc",
        "X-Forwarded-For": "10.0.0.1",
        "X-Forwarded-Host": "evil",
        "Forwarded": "for=10.0.0.1",
        "X-Real-IP": "10.0.0.1",
        "X-HTTP-Method-Override": "POST",
        "X-Original-URL": "/v1/files",
        "OpenAI-Beta": "assistants=v2",
        "X-Stainless-Lang": "python",
        "Idempotency-Key": "k1",
    }
    response = httpx.get(proxy.base_url + "/models", headers=headers)
    assert response.status_code == 200
    (received,) = upstream.fake.seen.headers
    seen = {k: v for k, v in received.items() if k != "authorization"}  # never printed
    for dropped in ("openai-organization", "openai-project", "cookie", "x-forwarded-for",
                    "x-forwarded-host", "forwarded", "x-real-ip", "x-http-method-override",
                    "x-original-url"):  # fmt: skip
        assert dropped not in seen
    assert seen["openai-beta"] == "assistants=v2"
    assert seen["x-stainless-lang"] == "python"
    assert seen["idempotency-key"] == "k1"


# -- 13: response header hygiene ---------------------------------------------------------------


def test_an_upstream_echoing_the_key_does_not_show_it_to_the_client(proxy: ProxyHandle) -> None:
    response = httpx.get(proxy.base_url + "/models", headers={"x-fake-behaviour": "echo-auth"})
    assert response.status_code == 200
    assert "authorization" not in response.headers
    echoed = "FAKEKEY" in str(response.headers)
    assert not echoed, "the key reached the client"  # a bool: failures never print the key


def test_headers_the_upstream_lists_in_connection_are_not_copied(proxy: ProxyHandle) -> None:
    headers = {"x-fake-behaviour": "connection-hop"}
    response = httpx.get(proxy.base_url + "/models", headers=headers)
    assert response.status_code == 200
    assert "x-hop-secret" not in response.headers


def test_invalid_upstream_gzip_is_a_502(proxy: ProxyHandle) -> None:
    response = httpx.get(proxy.base_url + "/models", headers={"x-fake-behaviour": "bad-gzip"})
    assert_openai_error(response, 502, "upstream_bad_response")


def test_upstream_switching_protocols_is_a_502_not_a_hang(proxy: ProxyHandle) -> None:
    began = time.monotonic()
    response = httpx.get(
        proxy.base_url + "/models", headers={"x-fake-behaviour": "switch-protocols"}, timeout=10
    )
    assert_openai_error(response, 502, "upstream_bad_response")
    assert time.monotonic() - began < 3


# -- 14: parse errors, deep JSON, huge ints, HTTP/1.0 ----------------------------------------------


def test_http_parse_errors_are_openai_shaped_and_do_not_echo_input(proxy: ProxyHandle) -> None:
    answer = raw_exchange(
        proxy, b"GET /v1/models HTTP/1.1\r\nHost: x\r\nBad-Header-ECHOME\x01: y\r\n\r\n"
    )
    assert answer.startswith((b"HTTP/1.0 400", b"HTTP/1.1 400")), answer[:200]
    assert b"application/json" in answer
    assert b'"error"' in answer
    assert b"ECHOME" not in answer


@pytest.mark.parametrize(
    "body",
    [
        b'{"model":"gpt-4o-mini","x":' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        b'{"model":"gpt-4o-mini","n":' + b"9" * 5000 + b"}",
    ],
    ids=["deep", "huge-int"],
)
def test_deep_json_and_huge_ints_are_a_clean_400(
    proxy: ProxyHandle, upstream: Upstream, body: bytes
) -> None:
    response = httpx.post(
        proxy.base_url + "/chat/completions",
        content=body,
        headers={"content-type": "application/json"},
    )
    message = assert_openai_error(response, 400, "invalid_json")
    assert "int_max_str_digits" not in message
    assert "recursion" not in message.lower()
    assert upstream.fake.seen.paths == []


def test_http10_client_gets_no_100_continue(proxy: ProxyHandle) -> None:
    body = b'{"model": "gpt-4o-mini", "messages": []}'
    with socket.create_connection(("127.0.0.1", proxy.running.port), timeout=3) as sock:
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.0\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Expect: 100-continue\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n"
        )
        sock.settimeout(0.5)
        with pytest.raises(TimeoutError):
            sock.recv(1024)  # nothing until the body arrives
        sock.settimeout(3)
        sock.sendall(body)
        assert sock.recv(65536).startswith(b"HTTP/1.0 200")


# -- 15: request heads have a deadline ----------------------------------------------------


def test_a_slow_request_head_is_cut_off(start_proxy: Callable[..., ProxyHandle]) -> None:
    proxy = start_proxy(header_timeout=0.5)
    with socket.create_connection(("127.0.0.1", proxy.running.port), timeout=5) as sock:
        sock.sendall(b"GET /v1/models HTTP/1.1\r\nHost: x\r\n")  # never ends the head
        assert closes_within(sock, 3)
    with socket.create_connection(("127.0.0.1", proxy.running.port), timeout=5) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert sock.recv(65536).startswith(b"HTTP/1.1 200")
        sock.sendall(b"GET /healthz HTTP/1.1\r\n")  # the next head on the kept-alive connection
        assert closes_within(sock, 3)


def test_the_head_deadline_runs_per_head_not_per_connection(
    start_proxy: Callable[..., ProxyHandle],
) -> None:
    """One timer per connection re-arms for each head: prompt heads never trip it."""
    proxy = start_proxy(header_timeout=0.5)
    with socket.create_connection(("127.0.0.1", proxy.running.port), timeout=5) as sock:
        for _ in range(5):  # 1.5 s of kept-alive traffic, each head well in time
            time.sleep(0.3)
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            assert sock.recv(65536).startswith(b"HTTP/1.1 200")
        time.sleep(0.3)
        sock.sendall(b"GET /healthz HTTP/1.1\r\n")  # this one never ends
        began = time.monotonic()
        assert closes_within(sock, 3)
        assert time.monotonic() - began >= 0.4  # timed from its own start


def test_slow_heads_do_not_pile_up_connections(start_proxy: Callable[..., ProxyHandle]) -> None:
    proxy = start_proxy(header_timeout=0.5)
    sockets = [socket.create_connection(("127.0.0.1", proxy.running.port)) for _ in range(50)]
    try:
        for sock in sockets:
            sock.sendall(b"GET /v1/models HTTP/1.1\r\n")
        time.sleep(1.5)
        assert all(closes_within(sock, 0.5) for sock in sockets)
        assert httpx.get(proxy.root_url + "/healthz").status_code == 200
    finally:
        for sock in sockets:
            sock.close()


def test_the_key_never_shows_in_answers_logs_or_metrics_of_hostile_calls(
    start_proxy: Callable[..., ProxyHandle],
) -> None:
    proxy = start_proxy(allowed_models="gpt-4o-mini", body_timeout=0.5, header_timeout=0.5)
    url = proxy.base_url + "/models"
    answers = []
    for behaviour in ("echo-auth", "bad-gzip", "switch-protocols", "connection-hop"):
        reply = httpx.get(url, headers={"x-fake-behaviour": behaviour})
        answers.append(f"{reply.headers}\n{reply.text}")
    answers.append(httpx.request("TRACE", url).text)
    answers.append(httpx.post(proxy.base_url + "/files", content=b"x").text)
    answers.append(httpx.post(proxy.base_url + "/chat/completions", json={"Model": "o3"}).text)
    for raw in (
        b"GET /v1/../admin HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /v1/models HTTP/1.1\r\nBad\x01: y\r\n\r\n",
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 9\r\n\r\n{",
    ):
        answers.append(raw_exchange(proxy, raw).decode("latin-1"))
    answers.append(httpx.get(proxy.root_url + "/metrics").text)
    exposed = "\n".join([proxy.log.getvalue(), *answers])
    assert '"event":"call"' in exposed
    leaked = FAKE_KEY in exposed or "FAKEKEY" in exposed
    assert not leaked, "the key leaked"  # a bool: a failure must not print the key itself


# -- 1 (under concurrency): buffered bodies share one memory budget -----------------------


def test_buffered_bodies_beyond_the_shared_budget_get_503(
    start_proxy: Callable[..., ProxyHandle], upstream: Upstream
) -> None:
    proxy = start_proxy(max_buffered_bytes=1_000_000, body_timeout=10)
    head = (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 900000\r\n\r\n"
    )
    body = b'{"model":"gpt-4o-mini","messages":[],"pad":"' + b"x" * (900_000 - 46) + b'"}'
    assert len(body) == 900_000
    with socket.create_connection(("127.0.0.1", proxy.running.port), timeout=10) as slow:
        slow.sendall(head + body[:850_000])  # holds what arrived (850 kB) while it uploads
        time.sleep(0.3)
        second = {"model": "gpt-4o-mini", "messages": [], "pad": "y" * 200_000}
        refused = httpx.post(proxy.base_url + "/chat/completions", json=second)
        assert_openai_error(refused, 503, "proxy_overloaded")
        assert refused.headers["retry-after"] == "1"
        slow.sendall(body[850_000:])
        assert slow.recv(65536).startswith(b"HTTP/1.1 200")
    accepted = httpx.post(proxy.base_url + "/chat/completions", json=second)
    assert accepted.status_code == 200  # the budget was given back
    alone = {"model": "gpt-4o-mini", "messages": [], "pad": "z" * 2_000_000}
    assert httpx.post(proxy.base_url + "/chat/completions", json=alone).status_code == 200
