"""LLM_PROXY_METRICS_PORT (the Deployment sets it): /metrics on its own port and only there.

A NetworkPolicy lets the scraper in on that port alone, so it can read metrics but never
call /v1 (which would spend the gateway's key).
"""

import json
from collections.abc import Callable, Iterator

import httpx
import pytest

from tests.support.proxy import ProxyHandle, Upstream, metric
from tests.support.workers import AUTH, CHAT, Pod

REQUESTS = 'llm_proxy_requests_total{model="gpt-4o-mini",path="/v1/chat/completions",status="200"}'


def test_metrics_leave_the_api_port_for_their_own(
    start_proxy: Callable[..., ProxyHandle], upstream: Upstream
) -> None:
    proxy = start_proxy(metrics_port=0)
    metrics_port = proxy.running.metrics_port
    assert metrics_port is not None
    assert metrics_port != proxy.running.port
    assert httpx.post(proxy.base_url + "/chat/completions", json=CHAT, headers=AUTH).is_success

    assert httpx.get(proxy.root_url + "/metrics").status_code == 404
    scraped = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics")
    assert scraped.status_code == 200
    assert metric(scraped.text, REQUESTS) == 1

    # The metrics port answers nothing else: no /v1 (the key), no probes.
    before = len(upstream.fake.seen.paths)
    for path in ("/v1/chat/completions", "/v1/models", "/healthz", "/readyz"):
        sent = httpx.post(f"http://127.0.0.1:{metrics_port}{path}", json=CHAT)
        assert sent.status_code == 404, path
    assert len(upstream.fake.seen.paths) == before
    events = [json.loads(line) for line in proxy.log_lines()]
    (listening,) = [event for event in events if event["event"] == "listening"]
    assert listening["metricsPort"] == metrics_port


def test_without_it_metrics_stay_on_the_api_port(proxy: ProxyHandle) -> None:
    assert proxy.running.metrics_port is None
    assert httpx.get(proxy.root_url + "/metrics").status_code == 200


@pytest.fixture
def pod_with_metrics_port(proxy_env: dict[str, str]) -> Iterator[Pod]:
    started = Pod({**proxy_env, "LLM_PROXY_WORKERS": "2", "LLM_PROXY_METRICS_PORT": "0"})
    yield started
    started.stop()


def test_with_workers_every_worker_serves_the_pods_totals_on_the_metrics_port(
    pod_with_metrics_port: Pod,
) -> None:
    pod = pod_with_metrics_port
    metrics_port = pod.listening["metricsPort"]
    assert isinstance(metrics_port, int)
    assert metrics_port != pod.port
    calls = 20
    for _ in range(calls):
        response = httpx.post(pod.root + "/v1/chat/completions", json=CHAT, headers=AUTH)
        assert response.status_code == 200
    assert httpx.get(pod.root + "/metrics").status_code == 404
    for _ in range(6):  # a new connection each: either worker answers, with the totals
        text = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).text
        assert metric(text, REQUESTS) == calls
    assert httpx.get(f"http://127.0.0.1:{metrics_port}/readyz").status_code == 404
