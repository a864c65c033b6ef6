"""With an allowlist the proxy fails closed: what it cannot check is refused, small and keyless."""

import socket
import threading
import time
from collections.abc import Callable

import httpx
import openai
import pytest
from prometheus_client import generate_latest

from proxy.observability import CallRecord, Metrics
from tests.proxy.proxy_process import launch
from tests.support.proxy import FAKE_KEY, ProxyHandle, Upstream, assert_openai_error

ALLOWED = "gpt-4o-mini,whisper-1"


@pytest.fixture
def guarded(start_proxy: Callable[..., ProxyHandle]) -> ProxyHandle:
    return start_proxy(allowed_models=ALLOWED)


def post(proxy: ProxyHandle, path: str, body: bytes, content_type: str | None) -> httpx.Response:
    headers = {} if content_type is None else {"content-type": content_type}
    return httpx.post(proxy.base_url + path, content=body, headers=headers)


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b'{"Model":"o1-pro","messages":[]}', "application/json"),
        (b'{"model":"gpt-4o-mini","MODEL":"o1-pro"}', "application/json"),
        (b'{"model":"o1-pro","model":"gpt-4o-mini"}', "application/json"),
        (b'{"mod\\u0065l":"o1-pro"}', "application/json"),
        (b'{"model":123}', "application/json"),
        (b'{"model":["o1-pro"]}', "application/json"),
        (b'{"model":"gpt-4o-mini","x":1,"model":null}', "application/json"),
        (b'{"model":"o1-pro","messages":[]}', "multipart/form-data; boundary=b"),
        (b'{"model":"o1-pro","messages":[]}', "application/x-www-form-urlencoded"),
        (b'{"model":"o1-pro","messages":[]}', "text/plain"),
        (b'{"model":"o1-pro","messages":[]}', None),
        (b"model=o1-pro&messages=x", "application/x-www-form-urlencoded"),
        (b"model=gpt-4o-mini&Model=o1-pro", "application/x-www-form-urlencoded"),
    ],
    ids=[
        "capitalised-key",
        "second-upper-key",
        "first-of-duplicates",
        "escaped-key",
        "number",
        "list",
        "null-duplicate",
        "json-as-multipart",
        "json-as-urlencoded",
        "json-as-text",
        "json-untyped",
        "urlencoded",
        "urlencoded-case",
    ],
)
def test_model_the_proxy_cannot_allow_never_reaches_upstream(
    guarded: ProxyHandle, upstream: Upstream, body: bytes, content_type: str | None
) -> None:
    response = post(guarded, "/chat/completions", body, content_type)
    assert_openai_error(response, 403, "model_not_allowed")
    assert upstream.fake.seen.paths == []


@pytest.mark.parametrize(
    "disposition",
    [
        b"content-disposition:form-data;name=model",
        b'Content-Disposition: form-data; name = "model"',
        b"Content-Disposition: form-data; name*=UTF-8''model",
        b'Content-Disposition: attachment; name="model"',
        b'Content-Disposition: form-data;\r\n name="model"',
    ],
    ids=["tight", "spaces", "rfc5987", "attachment", "folded"],
)
@pytest.mark.parametrize("newline", [b"\r\n", b"\n"], ids=["crlf", "lf"])
def test_multipart_spellings_real_parsers_accept_are_checked(
    guarded: ProxyHandle, upstream: Upstream, disposition: bytes, newline: bytes
) -> None:
    body = newline.join([b"--b", disposition, b"", b"o1-pro", b"--b--", b""])
    response = post(guarded, "/audio/transcriptions", body, "multipart/form-data; boundary=b")
    assert_openai_error(response, 403, "model_not_allowed")
    assert upstream.fake.seen.paths == []


@pytest.mark.parametrize(
    ("path", "body", "content_type"),
    [
        ("/chat/completions", b'{"messages":[]}', "application/json"),
        ("/chat/completions", b"[]", "application/json"),
        ("/chat/completions", b"\x00binary", "application/octet-stream"),
        ("/chat/completions", b"", "application/json"),
        ("/audio/transcriptions", b"--b\r\n\r\nx\r\n--b--", "multipart/form-data"),
        ("/embeddings", b"input=x", "application/x-www-form-urlencoded"),
    ],
    ids=["no-model", "array", "binary", "empty", "no-boundary", "form-without-model"],
)
def test_model_call_whose_model_cannot_be_determined_is_refused(
    guarded: ProxyHandle, upstream: Upstream, path: str, body: bytes, content_type: str
) -> None:
    response = post(guarded, path, body, content_type)
    message = assert_openai_error(response, 400, "model_required")
    assert "could not determine" in message
    assert upstream.fake.seen.paths == []


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/files"),
        ("GET", "/files"),
        ("POST", "/batches"),
        ("POST", "/assistants"),
        ("POST", "/threads/thread_1/runs"),
        ("POST", "/vector_stores"),
        ("POST", "/fine_tuning/jobs"),
        ("POST", "/responses/compact"),
        ("POST", "/some/new/endpoint"),
        ("DELETE", "/models/ft:gpt-4o-mini:org:x"),
    ],
)
def test_paths_the_proxy_cannot_police_are_refused_with_an_allowlist(
    guarded: ProxyHandle, upstream: Upstream, method: str, path: str
) -> None:
    response = httpx.request(method, guarded.base_url + path, content=b"{}")
    message = assert_openai_error(response, 403, "path_not_allowed")
    assert "LLM_PROXY_ALLOW_UNPOLICED_PATHS" in message
    assert upstream.fake.seen.paths == []


def test_unpoliced_paths_pass_when_the_operator_allows_them(
    start_proxy: Callable[..., ProxyHandle], upstream: Upstream
) -> None:
    proxy = start_proxy(allowed_models=ALLOWED, allow_unpoliced_paths=True)
    upload = httpx.post(proxy.base_url + "/files", content=b"\x00raw")
    assert upload.status_code == 404  # reached the fake, which has no /files
    refused = httpx.post(proxy.base_url + "/assistants", json={"model": "o1-pro"})
    assert_openai_error(refused, 403, "model_not_allowed")  # a model it does see still counts
    assert upstream.fake.seen.paths == ["/v1/files"]


def test_calls_that_run_no_model_still_pass(guarded: ProxyHandle, upstream: Upstream) -> None:
    assert httpx.get(guarded.base_url + "/models").status_code == 200
    ok = httpx.post(guarded.base_url + "/chat/completions", json={"model": "gpt-4o-mini"})
    assert ok.status_code == 200
    audio = {"file": ("a.wav", b"RIFF", "audio/wav")}
    url = guarded.base_url + "/audio/transcriptions"
    assert httpx.post(url, files=audio, data={"model": "whisper-1"}).status_code == 404
    query = httpx.get(guarded.base_url + "/models?model=o1-pro")
    assert_openai_error(query, 403, "model_not_allowed")
    assert upstream.fake.seen.paths == [
        "/v1/models", "/v1/chat/completions", "/v1/audio/transcriptions",
    ]  # fmt: skip


def test_a_huge_refused_model_name_gives_a_small_answer_and_log_line(
    guarded: ProxyHandle,
) -> None:
    name = "x" * (10 * 1024 * 1024)
    response = httpx.post(guarded.base_url + "/chat/completions", json={"model": name})
    assert_openai_error(response, 403, "model_not_allowed")
    assert len(response.content) < 1000
    assert len(guarded.log.getvalue()) < 5000


def test_refused_junk_models_do_not_use_up_model_label_slots(
    guarded: ProxyHandle, upstream: Upstream
) -> None:
    with httpx.Client() as client:
        for i in range(80):
            client.post(guarded.base_url + "/chat/completions", json={"model": f"junk-{i}"})
        client.post(guarded.base_url + "/chat/completions", json={"model": "gpt-4o-mini"})
    text = httpx.get(guarded.root_url + "/metrics").text
    assert 'model="gpt-4o-mini"' in text
    assert "junk-" not in text


def test_unaccepted_names_without_an_allowlist_do_not_take_label_slots() -> None:
    metrics = Metrics()
    for i in range(100):
        call = CallRecord("POST", "/v1/chat/x", "/v1/chat", model=f"bad-{i}", status=404)
        metrics.record(call, 0.01)
    good = CallRecord("POST", "/v1/chat/x", "/v1/chat", model="gpt-4o", status=200)
    metrics.record(good, 0.01)
    text = generate_latest(metrics.registry).decode()
    assert 'model="gpt-4o"' in text
    assert "bad-" not in text


def test_a_lone_surrogate_model_name_does_not_break_metrics(proxy: ProxyHandle) -> None:
    body = b'{"model":"\\udfff","messages":[]}'
    headers = {"content-type": "application/json"}
    reply = httpx.post(proxy.base_url + "/chat/completions", content=body, headers=headers)
    assert reply.status_code == 200  # forwarded: no allowlist, valid JSON
    scrape = httpx.get(proxy.root_url + "/metrics")
    assert scrape.status_code == 200
    assert "llm_proxy_requests_total" in scrape.text


def test_path_label_comes_from_a_fixed_set(proxy: ProxyHandle) -> None:
    with httpx.Client() as client:
        for i in range(50):
            client.get(f"{proxy.base_url}/r{i}x/s{i}y")
            client.get(f"{proxy.base_url}/models/m{i}")
    text = httpx.get(proxy.root_url + "/metrics").text
    assert "r1x" not in text
    assert "/v1/models/m" not in text
    paths = {
        line.split('path="')[1].split('"')[0] for line in text.splitlines() if 'path="' in line
    }
    assert paths == {"other", "/v1/models"}


def test_refusals_never_echo_the_key(guarded: ProxyHandle) -> None:
    response = httpx.post(guarded.base_url + "/files", content=b"x")
    leaked = FAKE_KEY in response.text or FAKE_KEY in guarded.log.getvalue()
    assert not leaked, "the key leaked"


def test_a_form_built_to_be_slow_to_scan_does_not_block_other_calls(
    proxy_env: dict[str, str], upstream: Upstream
) -> None:
    # 200 KB of this blocked the old regex scan (and /healthz) for seconds. A separate
    # process: a regex holding the GIL would freeze this test's threads too.
    process = launch({**proxy_env, "LLM_PROXY_ALLOWED_MODELS": ALLOWED}, ["serve"])
    try:
        body = b"--b\r\n" + b"content-disposition:form-data;" * (200_000 // 30)
        headers = {"content-type": "multipart/form-data; boundary=b"}
        url = process.root_url + "/v1/audio/transcriptions"
        results: list[httpx.Response] = []

        def call() -> None:
            results.append(httpx.post(url, content=body, headers=headers, timeout=60))

        caller = threading.Thread(target=call)
        caller.start()
        time.sleep(0.5)  # the body is on loopback by now: the scan is running or done
        began = time.monotonic()
        assert httpx.get(process.root_url + "/healthz", timeout=10).status_code == 200
        assert time.monotonic() - began < 1
        caller.join(timeout=60)
        assert_openai_error(results[0], 400, "model_required")
        assert upstream.fake.seen.paths == []
    finally:
        process.process.terminate()
        process.process.wait(timeout=15)


def test_a_form_with_too_many_parts_to_check_is_refused(
    guarded: ProxyHandle, upstream: Upstream
) -> None:
    # What a multipart parser upstream would find past the proxy's part limit is unknown.
    body = b'--b\r\nContent-Disposition: form-data; name="model"\r\n\r\ngpt-4o-mini\r\n'
    body += b"--b\r\n\r\nx\r\n" * 1200
    response = post(guarded, "/audio/transcriptions", body, "multipart/form-data; boundary=b")
    assert_openai_error(response, 400, "model_required")
    assert upstream.fake.seen.paths == []


def test_two_content_types_are_refused_before_any_reading(
    guarded: ProxyHandle, upstream: Upstream
) -> None:
    body = b'{"model":"o1-pro"}'
    request = (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\n"
        b"Content-Type: application/json\r\nContent-Length: "
        + str(len(body)).encode()
        + b"\r\n\r\n"
        + body
    )
    with socket.create_connection(("127.0.0.1", guarded.running.port), timeout=5) as sock:
        sock.sendall(request)
        assert sock.recv(65536).split(b" ")[1] in (b"400", b"403")
    assert upstream.fake.seen.paths == []


def test_sdk_calls_with_allowed_models_all_pass_the_allowlist(
    start_proxy: Callable[..., ProxyHandle], upstream: Upstream
) -> None:
    proxy = start_proxy(allowed_models="gpt-4o-mini,text-embedding-3-small,whisper-1")
    client = openai.OpenAI(base_url=proxy.base_url, api_key="dummy", max_retries=0)
    chat = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}]
    )
    assert chat.choices[0].message.content == "pong"
    stream = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "x"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    assert [c.usage.completion_tokens for c in stream if c.usage] == [5]
    client.embeddings.create(model="text-embedding-3-small", input=["a", "b"])
    assert client.responses.create(model="gpt-4o-mini", input="x").output_text == "pong"
    assert "gpt-4o-mini" in {m.id for m in client.models.list()}
    with pytest.raises(openai.NotFoundError):  # reached the fake, which has no audio endpoint
        client.audio.transcriptions.create(model="whisper-1", file=("a.wav", b"RIFF"))
    assert len(upstream.fake.seen.paths) == 6
    calls = proxy.calls(6)
    assert [c["model"] for c in calls][:3] == [
        "gpt-4o-mini",
        "gpt-4o-mini",
        "text-embedding-3-small",
    ]
    assert calls[1]["completionTokens"] == 5
