"""Access log, metrics and health endpoints, and proof the key never leaks."""

import json
import time
from collections.abc import Callable

import httpx
import openai
import pytest
from prometheus_client import generate_latest

from fakes.kubelet_secret_dir import KubeletSecretDir
from proxy.observability import CallRecord, Metrics
from proxy.routes import path_label
from tests.support.proxy import (
    CLIENT_DUMMY_KEY,
    FAKE_KEY,
    SECOND_KEY,
    ProxyHandle,
    Upstream,
    metric,
)

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


def test_access_log_has_one_json_line_per_call_with_the_documented_fields(
    proxy: ProxyHandle,
) -> None:
    body = json.dumps(CHAT).encode()
    headers = {"x-secret-header": "zz", "content-type": "application/json"}
    httpx.post(proxy.base_url + "/chat/completions", content=body, headers=headers)
    httpx.get(proxy.root_url + "/healthz")  # probes are not calls
    (call,) = proxy.calls(1)
    line = json.dumps(call)
    assert set(call) == {
        "time", "event", "method", "path", "model", "status", "durationMs", "streamed",
        "bytesIn", "bytesOut", "ttfbMs", "promptTokens", "completionTokens",
    }  # fmt: skip
    assert call["method"] == "POST"
    assert call["path"] == "/v1/chat/completions"
    assert call["model"] == "gpt-4o-mini"
    assert call["status"] == 200
    assert call["bytesIn"] == len(body)
    assert call["bytesOut"] > 0
    assert (call["promptTokens"], call["completionTokens"]) == (11, 1)
    assert "zz" not in line
    assert "hi" not in line.replace('"time"', "")  # no request body content


def test_metrics_count_requests_tokens_ttfb_in_flight_and_reloads(
    proxy: ProxyHandle, secret_dir: KubeletSecretDir
) -> None:
    client = openai.OpenAI(base_url=proxy.base_url, api_key=CLIENT_DUMMY_KEY, max_retries=0)
    client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}])
    list(
        client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "x"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    client.embeddings.create(model="text-embedding-3-small", input="x")
    secret_dir.write(SECOND_KEY)
    deadline = time.monotonic() + 3
    while 'llm_proxy_key_reloads_total{result="reloaded"}' not in (
        text := httpx.get(proxy.root_url + "/metrics").text
    ):
        assert time.monotonic() < deadline
        time.sleep(0.01)
    requests = (
        'llm_proxy_requests_total{model="gpt-4o-mini",path="/v1/chat/completions",status="200"}'
    )
    assert metric(text, requests) == 2
    embeddings = (
        'llm_proxy_requests_total{model="text-embedding-3-small",'
        'path="/v1/embeddings",status="200"}'
    )
    assert metric(text, embeddings) == 1
    assert metric(text, 'llm_proxy_tokens_total{kind="prompt",model="gpt-4o-mini"}') == 22
    assert metric(text, 'llm_proxy_tokens_total{kind="completion",model="gpt-4o-mini"}') == 6
    ttfb_count = 'llm_proxy_stream_time_to_first_byte_seconds_count{path="/v1/chat/completions"}'
    assert metric(text, ttfb_count) == 1
    latency_count = 'llm_proxy_request_duration_seconds_count{path="/v1/chat/completions"}'
    assert metric(text, latency_count) == 2
    assert metric(text, "llm_proxy_in_flight") == 0
    assert metric(text, 'llm_proxy_key_reloads_total{result="reloaded"}') == 1
    assert metric(text, "llm_proxy_key_loaded") == 1


def test_path_label_is_bounded() -> None:
    assert path_label("/v1/chat/completions") == "/v1/chat/completions"
    assert path_label("/v1/responses/resp_67cb71b351908190") == "/v1/responses"
    assert path_label("/v1/models/gpt-4o-mini") == "/v1/models"
    assert path_label("/v1/audio/transcriptions") == "/v1/audio/transcriptions"
    assert path_label("/v1/fine_tuning/jobs/ftjob-1/events") == "/v1/fine_tuning/jobs"
    assert path_label("/v1/chat/x9") == "/v1/chat"
    assert path_label("/v1/a/b/c/d") == "other"  # unknown resources share one label
    assert path_label("/v1/") == "other"


def test_readyz_and_healthz(proxy: ProxyHandle) -> None:
    ready = httpx.get(proxy.root_url + "/readyz")
    assert ready.status_code == 200
    assert ready.json()["status"] == "ready"
    assert len(ready.json()["keyFingerprint"]) == 12
    assert httpx.get(proxy.root_url + "/healthz").json() == {"status": "ok"}


def test_fake_key_never_appears_in_logs_metrics_or_answers(
    start_proxy: Callable[..., ProxyHandle], upstream: Upstream, secret_dir: KubeletSecretDir
) -> None:
    proxy = start_proxy(allowed_models="gpt-4o-mini", max_body_bytes=4000, read_timeout=0.3)
    client = openai.OpenAI(base_url=proxy.base_url, api_key=CLIENT_DUMMY_KEY, max_retries=0)
    answers: list[str] = []
    client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}])
    list(client.chat.completions.create(model="gpt-4o-mini", messages=[], stream=True))
    url = proxy.base_url + "/chat/completions"
    for body, headers in [
        ({**CHAT, "model": "o3"}, {}),
        ({**CHAT, "pad": "x" * 5000}, {}),
        (CHAT, {"x-fake-behaviour": "slow:1"}),
        (CHAT, {"x-fake-behaviour": "drop"}),
        (CHAT, {"x-fake-behaviour": "status:401"}),
    ]:
        answers.append(httpx.post(url, json=body, headers=headers).text)
    answers.append(
        httpx.post(url, content=b"{bad", headers={"content-type": "application/json"}).text
    )
    secret_dir.write(SECOND_KEY)
    secret_dir.write("")
    for path in ("/readyz", "/metrics", "/healthz"):
        answers.append(httpx.get(proxy.root_url + path).text)
    exposed = "\n".join([proxy.log.getvalue(), *answers])
    assert '"event":"call"' in exposed  # the scan looked at real output
    for secret in (FAKE_KEY, SECOND_KEY, "FAKEKEY", CLIENT_DUMMY_KEY):
        assert secret not in exposed


def test_histogram_buckets_follow_le_semantics() -> None:
    metrics = Metrics()
    call = CallRecord("POST", "/v1/embeddings", "/v1/embeddings", status=200)
    for duration in (0.005, 0.0051, 400.0):
        metrics.record(call, duration)
    text = generate_latest(metrics.registry).decode()
    bucket = 'llm_proxy_request_duration_seconds_bucket{le="%s",path="/v1/embeddings"}'
    assert metric(text, bucket % "0.005") == 1  # a value on a bound counts in that bucket
    assert metric(text, bucket % "0.01") == 2
    assert metric(text, bucket % "300.0") == 2
    assert metric(text, bucket % "+Inf") == 3
    assert metric(text, 'llm_proxy_request_duration_seconds_sum{path="/v1/embeddings"}') == (
        pytest.approx(400.0101)
    )


def test_an_overlong_model_name_does_not_become_a_label() -> None:
    metrics = Metrics()
    huge = "m" * 1_000_000  # a client's body can be 16 MiB; a label is kept for good
    metrics.record(
        CallRecord("POST", "/v1/chat/completions", "/v1/chat/completions", model=huge, status=200),
        0.01,
    )
    text = generate_latest(metrics.registry).decode()
    assert huge not in text
    assert 'model="other"' in text
