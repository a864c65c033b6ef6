"""The series the alerts and the dashboard read: the upstream's statuses apart
from the proxy's own refusals, the served key's fingerprint, and the OTel GenAI names."""

import concurrent.futures
from collections.abc import Callable

import httpx
import openai
import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from fakes.kubelet_secret_dir import KubeletSecretDir
from proxy.fingerprint import key_fingerprint
from proxy.observability import CallRecord, Metrics
from tests.support.proxy import (
    CLIENT_DUMMY_KEY,
    FAKE_KEY,
    SECOND_KEY,
    ProxyHandle,
    metric,
)

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
GENAI = 'gen_ai_provider_name="openai"'


def scrape(proxy: ProxyHandle) -> str:
    return httpx.get(proxy.root_url + "/metrics").text


def test_upstream_statuses_are_counted_apart_from_the_proxys_own_refusals(
    start_proxy: Callable[..., ProxyHandle],
) -> None:
    proxy = start_proxy(allowed_models="gpt-4o-mini", read_timeout=0.3)
    before = scrape(proxy)  # what the alerts divide by exists from the start, at 0
    assert metric(before, 'llm_proxy_upstream_requests_total{status="401"}') == 0
    assert metric(before, 'llm_proxy_upstream_requests_total{status="403"}') == 0
    assert metric(before, 'llm_proxy_refusals_total{code="proxy_overloaded"}') == 0
    url = proxy.base_url + "/chat/completions"
    for behaviour in ("status:401", "status:401", "status:403", "status:503", "slow:1", "drop"):
        httpx.post(url, json=CHAT, headers={"x-fake-behaviour": behaviour})
    httpx.post(url, json=CHAT)
    httpx.post(url, json={**CHAT, "model": "o3"})  # refused here (403): never upstream
    text = scrape(proxy)
    upstream = 'llm_proxy_upstream_requests_total{status="%s"}'
    assert metric(text, upstream % "401") == 2
    assert metric(text, upstream % "403") == 1
    assert metric(text, upstream % "503") == 1
    assert metric(text, upstream % "200") == 1
    assert metric(text, upstream % "timeout") == 1
    assert metric(text, upstream % "unreachable") == 1
    total = sum(
        sample.value
        for family in text_string_to_metric_families(text)
        if family.name == "llm_proxy_upstream_requests"
        for sample in family.samples
    )
    assert total == 7  # the allowlist's own 403 is in llm_proxy_requests_total only
    own = 'llm_proxy_requests_total{model="other",path="/v1/chat/completions",status="403"}'
    assert metric(text, own) == 1
    assert metric(text, 'llm_proxy_refusals_total{code="model_not_allowed"}') == 1
    assert 'llm_proxy_refusals_total{code="upstream' not in text  # those are upstream's


def test_shed_calls_are_counted_as_overload_refusals(
    start_proxy: Callable[..., ProxyHandle],
) -> None:
    proxy = start_proxy(max_in_flight=1)
    url = proxy.base_url + "/chat/completions"
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        slow = pool.submit(httpx.post, url, json=CHAT, headers={"x-fake-behaviour": "slow:1"})
        for _ in range(200):
            if metric(scrape(proxy), "llm_proxy_in_flight") == 1:
                break
        shed = httpx.post(url, json=CHAT)
        assert slow.result().status_code == 200
    assert shed.status_code == 503
    text = scrape(proxy)
    assert metric(text, 'llm_proxy_refusals_total{code="proxy_overloaded"}') == 1
    assert metric(text, 'llm_proxy_upstream_requests_total{status="200"}') == 1


def test_key_info_carries_the_served_fingerprint_and_follows_rotation(
    proxy: ProxyHandle, secret_dir: KubeletSecretDir
) -> None:
    info = 'llm_proxy_key_info{fingerprint="%s"}'
    text = scrape(proxy)
    assert metric(text, info % key_fingerprint(FAKE_KEY)) == 1
    secret_dir.write(SECOND_KEY)
    httpx.get(proxy.root_url + "/readyz")
    for _ in range(300):
        text = scrape(proxy)
        if key_fingerprint(SECOND_KEY) in text:
            break
    assert metric(text, info % key_fingerprint(SECOND_KEY)) == 1
    assert key_fingerprint(FAKE_KEY) not in text  # one series per pod: the old one is gone
    secret_dir.write("")
    for _ in range(300):
        text = scrape(proxy)
        if "llm_proxy_key_loaded 0.0" in text:
            break
    assert "llm_proxy_key_info{" not in text  # no key, no fingerprint
    for secret in (FAKE_KEY, SECOND_KEY, "FAKEKEY"):
        assert secret not in text


def test_genai_metrics_use_the_otel_names_attributes_and_buckets(proxy: ProxyHandle) -> None:
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
    client.models.list()  # not a GenAI operation
    httpx.post(
        proxy.base_url + "/chat/completions", json=CHAT, headers={"x-fake-behaviour": "status:401"}
    )
    text = scrape(proxy)
    chat = 'gen_ai_operation_name="chat",gen_ai_provider_name="openai"'
    model = 'gen_ai_request_model="gpt-4o-mini"'
    tokens = f"gen_ai_client_token_usage_count{{{chat},{model},gen_ai_token_type=%s}}"
    assert metric(text, tokens % '"input"') == 2
    assert metric(text, tokens % '"output"') == 2
    token_sum = f"gen_ai_client_token_usage_sum{{{chat},{model},gen_ai_token_type=%s}}"
    assert metric(text, token_sum % '"input"') == 22  # the fake upstream's 11 per call
    bucket = f'gen_ai_client_token_usage_bucket{{{chat},{model},gen_ai_token_type="input",le=%s}}'
    assert metric(text, bucket % '"4.0"') == 0
    assert metric(text, bucket % '"16.0"') == 2  # the convention's boundaries: 1, 4, 16, …
    duration = "gen_ai_server_request_duration_seconds_count{error_type=%s,%s,%s}"
    assert metric(text, duration % ('""', chat, model)) == 2
    assert metric(text, duration % ('"401"', chat, model)) == 1
    embeddings = (
        'gen_ai_server_request_duration_seconds_count{error_type="",'
        'gen_ai_operation_name="embeddings",gen_ai_provider_name="openai",'
        'gen_ai_request_model="text-embedding-3-small"}'
    )
    assert metric(text, embeddings) == 1
    ttft = f"gen_ai_server_time_to_first_token_seconds_count{{{chat},{model}}}"
    assert metric(text, ttft) == 1  # streams only
    assert "/v1/models" in text  # counted in llm_proxy_*, but not as a GenAI operation
    assert not [
        line for line in text.splitlines() if line.startswith("gen_ai") and "models" in line
    ]


@pytest.mark.parametrize(("value", "bucket"), [(0.01, "0.01"), (0.0101, "0.02"), (90.0, "+Inf")])
def test_genai_duration_buckets_follow_le_semantics(value: float, bucket: str) -> None:
    metrics = Metrics()
    call = CallRecord("POST", "/v1/embeddings", "/v1/embeddings", status=200)
    metrics.record(call, value)
    text = generate_latest(metrics.registry).decode()
    labels = (
        'error_type="",gen_ai_operation_name="embeddings",gen_ai_provider_name="openai",'
        'gen_ai_request_model="",le="%s"'
    )
    series = "gen_ai_server_request_duration_seconds_bucket{" + labels + "}"
    edges = ["0.01", "0.02", "81.92", "+Inf"]
    for edge in edges:
        expected = 1 if edges.index(edge) >= edges.index(bucket) else 0
        assert metric(text, series % edge) == expected, edge
