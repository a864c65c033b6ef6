"""Identity with LLM_PROXY_WORKERS=2: every worker verifies tokens, each enforces its share
of an app's budget, and /metrics shows the pod's per-app totals whichever worker answers."""

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from fakes.cluster_issuer import FakeIssuer, SigningKey, mint, start_fake_issuer
from tests.support.proxy import LoopThread, metric
from tests.support.workers import CHAT, Pod


@pytest.fixture
def jwks_url(upstream_loop: LoopThread) -> Iterator[tuple[str, SigningKey]]:
    key = SigningKey("worker-test-key")
    runner, port = upstream_loop.run(start_fake_issuer(FakeIssuer([key])))
    yield f"http://127.0.0.1:{port}/openid/v1/jwks", key
    upstream_loop.run(runner.cleanup())


def test_workers_attribute_and_split_the_budget(
    proxy_env: dict[str, str], jwks_url: tuple[str, SigningKey], tmp_path: Path
) -> None:
    url, key = jwks_url
    own = tmp_path / "own-token"
    own.write_text("proxy-own-token-FAKE")
    clients = [{"name": "chat", "namespace": "team-a", "serviceAccount": "chat",
                "requestsPerMinute": 40}]  # fmt: skip
    pod = Pod(
        {
            **proxy_env,
            "LLM_PROXY_WORKERS": "2",
            "LLM_PROXY_IDENTITY_MODE": "require",
            "LLM_PROXY_IDENTITY_JWKS_URL": url,
            "LLM_PROXY_IDENTITY_TOKEN_FILE": str(own),
            "LLM_PROXY_IDENTITY_CA_FILE": "",
            "LLM_PROXY_IDENTITY_SHARES": "2",  # two replicas: each worker gets 40/(2x2) = 10
            "LLM_PROXY_CLIENTS": json.dumps(clients),
        }
    )
    try:
        if time.time() % 60 > 55:  # the minute windows: keep the calls within one
            time.sleep(61 - time.time() % 60)
        token = mint(key, "team-a", "chat")
        headers = {"Authorization": f"Bearer {token}"}
        statuses = []
        for _ in range(30):  # a connection per call: they spread over the workers
            answer = httpx.post(pod.root + "/v1/chat/completions", json=CHAT, headers=headers)
            statuses.append(answer.status_code)
        served = statuses.count(200)
        # Each worker admits its 10: 20 at most, whatever the spread over the workers.
        assert 10 <= served <= 20
        assert set(statuses) <= {200, 429}
        for _ in range(6):  # scrapes land on either worker; every one sees the pod's totals
            text = httpx.get(pod.root + "/metrics", timeout=5).text
            assert (
                metric(text, 'llm_proxy_client_requests_total{client="chat",status="200"}')
                == served
            )
            assert metric(text, 'llm_proxy_client_requests_total{client="chat",status="429"}') == (
                30 - served
            )
        assert token not in "".join(json.dumps(line) for line in pod.lines)
    finally:
        pod.stop()
