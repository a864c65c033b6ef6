"""Every answer the proxy gives itself: status, OpenAI shape, and no key inside."""

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator

import httpx
import openai
import pytest

from fakes.kubelet_secret_dir import KubeletSecretDir
from tests.support.proxy import FAKE_KEY, ProxyHandle, Upstream, assert_openai_error

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


def post_chat(proxy: ProxyHandle, body: object = CHAT, **kwargs: object) -> httpx.Response:
    return httpx.post(proxy.base_url + "/chat/completions", json=body, **kwargs)  # type: ignore[arg-type]


def test_model_not_in_allowlist_is_403_naming_model_and_allowed(
    start_proxy: Callable[..., ProxyHandle], upstream: Upstream
) -> None:
    proxy = start_proxy(allowed_models="gpt-4o-mini,text-embedding-3-small")
    message = assert_openai_error(
        post_chat(proxy, {**CHAT, "model": "gpt-4.5-preview"}), 403, "model_not_allowed"
    )
    assert "'gpt-4.5-preview'" in message
    assert "gpt-4o-mini, text-embedding-3-small" in message
    assert post_chat(proxy).status_code == 200  # an allowed model still passes
    assert len(upstream.fake.seen.paths) == 1  # the refused call never left the proxy


def test_allowlisted_sdk_call_raises_permission_denied(
    start_proxy: Callable[..., ProxyHandle],
) -> None:
    proxy = start_proxy(allowed_models=("gpt-4o-mini",))
    client = openai.OpenAI(base_url=proxy.base_url, api_key="dummy", max_retries=0)
    with pytest.raises(openai.PermissionDeniedError):
        client.embeddings.create(model="text-embedding-3-large", input="x")


def test_body_over_limit_is_413(start_proxy: Callable[..., ProxyHandle]) -> None:
    proxy = start_proxy(max_body_bytes=1000)
    big = {**CHAT, "messages": [{"role": "user", "content": "x" * 2000}]}
    assert_openai_error(post_chat(proxy, big), 413, "request_too_large")


def test_chunked_body_over_limit_is_413(
    start_proxy: Callable[..., ProxyHandle], upstream: Upstream
) -> None:
    proxy = start_proxy(max_body_bytes=1000)

    def chunks() -> Iterator[bytes]:
        yield b'{"model": "gpt-4o-mini", "x": "'
        yield b"y" * 2000
        yield b'"}'

    response = httpx.post(
        proxy.base_url + "/chat/completions",
        content=chunks(),
        headers={"content-type": "application/json"},
    )
    assert_openai_error(response, 413, "request_too_large")
    assert upstream.fake.seen.paths == []


def test_malformed_json_is_400(proxy: ProxyHandle, upstream: Upstream) -> None:
    response = httpx.post(
        proxy.base_url + "/chat/completions",
        content=b'{"model": "gpt-4o-mini", ',
        headers={"content-type": "application/json"},
    )
    assert_openai_error(response, 400, "invalid_json")
    assert upstream.fake.seen.paths == []


def test_upstream_read_timeout_is_504(
    start_proxy: Callable[..., ProxyHandle], upstream: Upstream
) -> None:
    proxy = start_proxy(read_timeout=0.3)
    response = post_chat(proxy, headers={"x-fake-behaviour": "slow:3"})
    message = assert_openai_error(response, 504, "upstream_timeout")
    assert "read" in message


@pytest.fixture
def blackhole_port() -> Iterator[int]:
    """A port whose accept queue is full, so new connects hang (no SYN-ACK)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    port = server.getsockname()[1]
    fillers = []
    for _ in range(3):
        filler = socket.socket()
        filler.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            filler.connect(("127.0.0.1", port))
        fillers.append(filler)
    time.sleep(0.05)
    yield port
    for sock in [*fillers, server]:
        sock.close()


def test_upstream_connect_timeout_is_504(
    start_proxy: Callable[..., ProxyHandle], blackhole_port: int
) -> None:
    proxy = start_proxy(upstream=f"http://127.0.0.1:{blackhole_port}/v1", connect_timeout=0.3)
    message = assert_openai_error(post_chat(proxy), 504, "upstream_timeout")
    assert "connect" in message


def test_upstream_refusing_connections_is_502(start_proxy: Callable[..., ProxyHandle]) -> None:
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    proxy = start_proxy(upstream=f"http://127.0.0.1:{port}/v1")
    assert_openai_error(post_chat(proxy), 502, "upstream_unreachable")


def test_upstream_dropping_the_connection_is_502(proxy: ProxyHandle) -> None:
    response = post_chat(proxy, headers={"x-fake-behaviour": "drop"})
    assert_openai_error(response, 502, "upstream_unreachable")


def test_in_flight_bound_sheds_excess_with_503_and_retry_after(
    start_proxy: Callable[..., ProxyHandle],
) -> None:
    proxy = start_proxy(max_in_flight=2)
    slow_results: list[int] = []

    def slow_call() -> None:
        response = post_chat(proxy, headers={"x-fake-behaviour": "slow:2"})
        slow_results.append(response.status_code)

    threads = [threading.Thread(target=slow_call) for _ in range(2)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 3
    while proxy.running.state.forwarder.in_flight < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    response = post_chat(proxy)
    assert_openai_error(response, 503, "proxy_overloaded")
    assert response.headers["retry-after"] == "1"
    for thread in threads:
        thread.join()
    assert slow_results == [200, 200]
    assert post_chat(proxy).status_code == 200  # capacity is back


def test_disabled_proxy_is_503_and_not_ready(
    start_proxy: Callable[..., ProxyHandle], upstream: Upstream
) -> None:
    proxy = start_proxy(disabled=True)
    assert_openai_error(post_chat(proxy), 503, "proxy_disabled")
    ready = httpx.get(proxy.root_url + "/readyz")
    assert ready.status_code == 503
    assert ready.json()["reason"] == "disabled"
    assert httpx.get(proxy.root_url + "/healthz").status_code == 200
    assert upstream.fake.seen.paths == []


@pytest.mark.parametrize("content", ["", "  \n"], ids=["empty", "blank"])
def test_empty_key_file_is_503_and_never_sends_unauthenticated(
    start_proxy: Callable[..., ProxyHandle],
    upstream: Upstream,
    secret_dir: KubeletSecretDir,
    content: str,
) -> None:
    secret_dir.write(content)
    proxy = start_proxy()
    response = post_chat(proxy)
    assert_openai_error(response, 503, "key_unavailable")
    assert response.headers["retry-after"] == "1"
    ready = httpx.get(proxy.root_url + "/readyz")
    assert ready.status_code == 503
    assert ready.json() == {
        "status": "not ready",
        "reason": "key missing or empty",
        "keyFingerprint": None,
    }
    assert upstream.fake.seen.authorizations == []


def test_missing_key_file_is_503(
    start_proxy: Callable[..., ProxyHandle], upstream: Upstream
) -> None:
    proxy = start_proxy(key_file="/nonexistent/llm-gateway/apiKey")
    assert_openai_error(post_chat(proxy), 503, "key_unavailable")
    assert upstream.fake.seen.authorizations == []


def test_paths_outside_v1_are_404(proxy: ProxyHandle, upstream: Upstream) -> None:
    response = httpx.post(proxy.root_url + "/chat/completions", json=CHAT)
    assert_openai_error(response, 404, "not_found")
    assert upstream.fake.seen.paths == []


def test_every_refusal_is_in_the_access_log(start_proxy: Callable[..., ProxyHandle]) -> None:
    proxy = start_proxy(allowed_models="gpt-4o-mini", max_body_bytes=500)
    post_chat(proxy, {**CHAT, "model": "o3"})
    post_chat(proxy, {**CHAT, "messages": [{"role": "user", "content": "x" * 600}]})
    calls = proxy.calls(2)
    assert [(c["status"], c["error"]) for c in calls] == [
        (403, "model_not_allowed"),
        (413, "request_too_large"),
    ]
    assert calls[0]["model"] == "o3"


def test_an_unexpected_failure_is_an_openai_shaped_500(
    proxy: ProxyHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_args: object) -> None:
        raise RuntimeError(f"bug holding {FAKE_KEY}")

    monkeypatch.setattr("proxy.forward.upstream_headers", broken)
    message = assert_openai_error(post_chat(proxy), 500, "proxy_error")
    assert "bug" not in message
    assert proxy.calls(1)[-1]["error"] == "internal_error:RuntimeError"
    assert "FAKEKEY" not in proxy.log.getvalue()


def test_allowlist_also_checks_multipart_model_fields(
    start_proxy: Callable[..., ProxyHandle], upstream: Upstream
) -> None:
    proxy = start_proxy(allowed_models="whisper-1")
    url = proxy.base_url + "/audio/transcriptions"
    audio = {"file": ("a.wav", b"RIFF....WAVE" * 100, "audio/wav")}
    refused = httpx.post(url, files=audio, data={"model": "gpt-4o-transcribe"})
    message = assert_openai_error(refused, 403, "model_not_allowed")
    assert "'gpt-4o-transcribe'" in message
    allowed = httpx.post(url, files=audio, data={"model": "whisper-1"})
    assert allowed.status_code == 404  # reached the fake, which has no audio endpoint
    assert upstream.fake.seen.paths == ["/v1/audio/transcriptions"]
    assert upstream.fake.seen.body_sizes[0] > 1200  # the whole form went upstream


def test_streamed_upload_over_limit_is_413_not_502(
    start_proxy: Callable[..., ProxyHandle],
) -> None:
    proxy = start_proxy(max_body_bytes=1000)

    def chunks() -> Iterator[bytes]:  # no Content-Length: only counting can catch it
        for _ in range(5):
            yield b"x" * 600

    response = httpx.post(
        proxy.base_url + "/files",
        content=chunks(),
        headers={"content-type": "application/octet-stream"},
    )
    assert_openai_error(response, 413, "request_too_large")
    assert proxy.calls(1)[-1]["error"] == "request_too_large"


def form(*parts: tuple[str, str]) -> bytes:
    """A multipart body from (Content-Disposition parameters, value) pairs, in order."""
    lines = []
    for disposition, value in parts:
        lines += ["--b", f"Content-Disposition: form-data; {disposition}", "", value]
    return ("\r\n".join([*lines, "--b--", ""])).encode()


@pytest.mark.parametrize(
    "body",
    [
        form(('name="model_hint"', "whisper-1"), ('name="model"', "gpt-4o-transcribe")),
        form(('name="model"', "whisper-1"), ('name="model"', "gpt-4o-transcribe")),
        form(('x="1"; name="model"', "gpt-4o-transcribe")),
    ],
    ids=["decoy-field-first", "repeated-field", "name-not-first-parameter"],
)
def test_multipart_allowlist_cannot_be_sidestepped(
    start_proxy: Callable[..., ProxyHandle], upstream: Upstream, body: bytes
) -> None:
    proxy = start_proxy(allowed_models="whisper-1")
    response = httpx.post(
        proxy.base_url + "/audio/transcriptions",
        content=body,
        headers={"content-type": "multipart/form-data; boundary=b"},
    )
    message = assert_openai_error(response, 403, "model_not_allowed")
    assert "'gpt-4o-transcribe'" in message
    assert upstream.fake.seen.paths == []


@pytest.mark.parametrize("content_type", [None, "text/plain"], ids=["no-content-type", "text"])
def test_allowlist_checks_a_json_body_whatever_its_content_type(
    start_proxy: Callable[..., ProxyHandle], upstream: Upstream, content_type: str | None
) -> None:
    # Upstreams may parse such a body as JSON anyway (FastAPI does when the header is missing).
    proxy = start_proxy(allowed_models="gpt-4o-mini")
    headers = {} if content_type is None else {"content-type": content_type}
    body = b'{"model": "o3", "messages": []}'
    response = httpx.post(proxy.base_url + "/chat/completions", content=body, headers=headers)
    assert_openai_error(response, 403, "model_not_allowed")
    not_json = httpx.post(
        proxy.base_url + "/chat/completions", content=b"\x00{raw", headers=headers
    )
    assert_openai_error(not_json, 400, "model_required")  # no model it can read: refused
    assert upstream.fake.seen.paths == []


def test_key_file_with_more_than_one_line_is_unusable_not_a_500(
    start_proxy: Callable[..., ProxyHandle], upstream: Upstream, secret_dir: KubeletSecretDir
) -> None:
    # No header can carry it; before, the proxy was ready and every call failed with 500.
    secret_dir.write(f"{FAKE_KEY}\nsk-second-line")
    proxy = start_proxy()
    assert_openai_error(post_chat(proxy), 503, "key_unavailable")
    assert httpx.get(proxy.root_url + "/readyz").status_code == 503
    assert upstream.fake.seen.authorizations == []
