"""LLM_PROXY_WORKERS=2: one port, one key, one metrics view, one drain per pod."""

import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from fakes.kubelet_secret_dir import KubeletSecretDir
from proxy.fingerprint import key_fingerprint
from tests.support.proxy import FAKE_KEY, SECOND_KEY, Upstream, metric
from tests.support.workers import AUTH, CHAT, Pod, children


@pytest.fixture
def pod(proxy_env: dict[str, str]) -> Iterator[Pod]:
    started = Pod({**proxy_env, "LLM_PROXY_WORKERS": "2", "LLM_PROXY_KEY_POLL_INTERVAL": "0.05"})
    yield started
    started.stop()


def test_both_workers_serve_one_port_and_start_quickly(pod: Pod) -> None:
    assert len(pod.worker_pids) == 2
    assert children(pod.process.pid) == pod.worker_pids
    assert pod.answering_workers() == pod.worker_pids
    assert pod.startup_seconds < 5  # start→ready (the benchmark measures the 0.5 s target)


def test_metrics_show_the_pods_totals_whichever_worker_answers(pod: Pod) -> None:
    calls = 30
    for _ in range(calls):  # a connection per call: they spread over the workers
        response = httpx.post(pod.root + "/v1/chat/completions", json=CHAT, headers=AUTH)
        assert response.status_code == 200
    requests = (
        'llm_proxy_requests_total{model="gpt-4o-mini",path="/v1/chat/completions",status="200"}'
    )
    for _ in range(10):  # scrapes land on either worker; every one sees the total
        text = httpx.get(pod.root + "/metrics", timeout=5).text
        assert metric(text, requests) == calls
        assert metric(text, "llm_proxy_in_flight") == 0
        assert metric(text, "llm_proxy_key_loaded") == 1
        assert (
            metric(text, 'llm_proxy_tokens_total{kind="prompt",model="gpt-4o-mini"}') == 11 * calls
        )


def test_a_key_rotation_reaches_every_worker_once(
    pod: Pod, secret_dir: KubeletSecretDir, upstream: Upstream
) -> None:
    secret_dir.write(SECOND_KEY)
    reloaded = pod.wait_for("key_reloaded", 5)
    assert reloaded["keyFingerprint"] == key_fingerprint(SECOND_KEY)
    seen = set()
    for _ in range(40):
        answer = httpx.get(pod.root + "/readyz", timeout=5).json()
        seen.add(answer["worker"])
        assert answer["keyFingerprint"] == key_fingerprint(SECOND_KEY)
    assert seen == pod.worker_pids
    before = len(upstream.fake.seen.authorizations)
    for _ in range(20):
        httpx.post(pod.root + "/v1/chat/completions", json=CHAT, headers=AUTH)
    assert set(upstream.fake.seen.authorizations[before:]) == {f"Bearer {SECOND_KEY}"}
    text = httpx.get(pod.root + "/metrics", timeout=5).text
    assert metric(text, 'llm_proxy_key_reloads_total{result="reloaded"}') == 1
    for pid in pod.worker_pids:  # the key reached the workers over their socketpair only
        for part in ("cmdline", "environ"):
            exposed = Path(f"/proc/{pid}/{part}").read_bytes()
            assert FAKE_KEY.encode() not in exposed
            assert SECOND_KEY.encode() not in exposed


def test_sigterm_drains_every_worker_and_lets_calls_finish(pod: Pod) -> None:
    slow = {**AUTH, "x-fake-behaviour": "slow:1.0"}
    results: list[int] = []

    def call() -> None:
        url = pod.root + "/v1/chat/completions"
        results.append(httpx.post(url, json=CHAT, headers=slow, timeout=10).status_code)

    callers = [threading.Thread(target=call) for _ in range(4)]
    for caller in callers:
        caller.start()
    time.sleep(0.3)
    pod.process.send_signal(signal.SIGTERM)
    pod.wait_for("draining", 5)
    answer = httpx.get(pod.root + "/readyz", timeout=5)
    assert (answer.status_code, answer.json()["reason"]) == (503, "draining")
    for caller in callers:
        caller.join(timeout=10)
    assert results == [200] * 4
    assert pod.process.wait(timeout=10) == 0
    assert pod.process.stdout is not None
    pod.lines += [json.loads(raw) for raw in pod.process.stdout.read().splitlines()]
    stopped = [line for line in pod.lines if line["event"] == "stopped"]
    assert len(stopped) == 3  # each worker, then the supervisor
    assert sum(1 for line in pod.lines if line["event"] == "draining") == 3
    assert all(not Path(f"/proc/{pid}").exists() for pid in pod.worker_pids)


def test_a_worker_that_dies_is_replaced(pod: Pod) -> None:
    victim = min(pod.worker_pids)
    os.kill(victim, signal.SIGKILL)
    exited = pod.wait_for("worker_exited", 5)
    assert exited["pid"] == victim
    deadline = time.monotonic() + 5
    while len(children(pod.process.pid)) < 2:
        assert time.monotonic() < deadline, "no replacement worker"
        time.sleep(0.02)
    replacement = children(pod.process.pid) - pod.worker_pids
    assert len(replacement) == 1
    pod.worker_pids = children(pod.process.pid)
    assert pod.answering_workers() == pod.worker_pids
    response = httpx.post(pod.root + "/v1/chat/completions", json=CHAT, headers=AUTH)
    assert response.status_code == 200


def test_one_worker_is_one_process(proxy_env: dict[str, str]) -> None:
    single = Pod(proxy_env)
    try:
        assert "workers" not in single.listening
        assert children(single.process.pid) == set()
        ready = httpx.get(single.root + "/readyz").json()
        assert "worker" not in ready
    finally:
        single.process.send_signal(signal.SIGTERM)
        assert single.process.wait(timeout=10) == 0


def test_workers_stop_when_their_supervisor_is_killed(pod: Pod) -> None:
    """No orphan keeps serving with a key nobody keeps current."""
    pod.process.kill()
    pod.process.wait(timeout=5)
    deadline = time.monotonic() + 10
    while any(Path(f"/proc/{pid}").exists() for pid in pod.worker_pids):
        assert time.monotonic() < deadline, "a worker outlived its supervisor"
        time.sleep(0.05)


def test_key_info_and_upstream_and_genai_series_are_the_pods_whichever_worker_answers(
    pod: Pod, secret_dir: KubeletSecretDir
) -> None:
    calls = 12
    for _ in range(calls):  # a connection per call: they spread over the workers
        httpx.post(pod.root + "/v1/chat/completions", json=CHAT, headers=AUTH)
    secret_dir.write(SECOND_KEY)
    pod.wait_for("key_reloaded", 5)
    genai = (
        'gen_ai_server_request_duration_seconds_count{error_type="",'
        'gen_ai_operation_name="chat",gen_ai_provider_name="openai",'
        'gen_ai_request_model="gpt-4o-mini"}'
    )
    for _ in range(6):
        text = httpx.get(pod.root + "/metrics", timeout=5).text
        assert metric(text, 'llm_proxy_upstream_requests_total{status="200"}') == calls
        assert metric(text, genai) == calls
        info = f'llm_proxy_key_info{{fingerprint="{key_fingerprint(SECOND_KEY)}"}}'
        assert metric(text, info) == 1
        assert key_fingerprint(FAKE_KEY) not in text
