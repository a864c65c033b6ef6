"""Identity on the proxy plane: ServiceAccount tokens verified against a fake cluster
issuer on loopback, calls attributed per app, per-app budgets; the official openai SDK
as the client, reading its token from a file on every call (as a pod would)."""

import asyncio
import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from pydantic import ValidationError

from fakes.cluster_issuer import (
    FakeIssuer,
    SigningKey,
    mint,
    start_fake_issuer,
)
from proxy.identity.clients import ClientSpec
from proxy.identity.gate import identity_config
from proxy.identity.limits import Budgets
from proxy.identity.refusals import duration, rate_limited
from proxy.settings import Settings
from tests.support.proxy import FAKE_KEY, ROOT, LoopThread, ProxyHandle, Upstream, metric

PROXY_OWN_TOKEN = "proxy-own-sa-token-FAKE-0000-LEAKME"
CLIENTS: list[dict[str, Any]] = [
    {"name": "chat", "namespace": "team-a", "serviceAccount": "chat", "tokensPerMinute": 20},
    {"name": "batch", "namespace": "team-b", "serviceAccount": "batch"},
]
MESSAGES: Any = [{"role": "user", "content": "ping"}]


@pytest.fixture(scope="session")
def cluster_key() -> SigningKey:
    return SigningKey("cluster-key-1")


@pytest.fixture(scope="session")
def stranger_key() -> SigningKey:
    return SigningKey("cluster-key-1")  # same kid, another private key


@pytest.fixture
def issuer(upstream_loop: LoopThread, cluster_key: SigningKey) -> Iterator[tuple[FakeIssuer, str]]:
    fake = FakeIssuer([cluster_key])
    runner, port = upstream_loop.run(start_fake_issuer(fake))
    yield fake, f"http://127.0.0.1:{port}/openid/v1/jwks"
    upstream_loop.run(runner.cleanup())


@pytest.fixture
def start_identity(
    start_proxy: Callable[..., ProxyHandle], issuer: tuple[FakeIssuer, str], tmp_path: Path
) -> Callable[..., ProxyHandle]:
    own = tmp_path / "own-token"
    own.write_text(PROXY_OWN_TOKEN + "\n")

    def factory(mode: str = "require", **overrides: Any) -> ProxyHandle:
        fields: dict[str, Any] = {
            "identity_mode": mode,
            "identity_jwks_url": issuer[1],
            "identity_token_file": own,
            "identity_ca_file": None,
            "clients": json.dumps(CLIENTS),
        }
        fields.update(overrides)
        return start_proxy(**fields)

    return factory


def token_file(tmp_path: Path, token: str) -> Callable[[], str]:
    """The SDK's api_key as a callable that reads the projected token file each call."""
    path = tmp_path / f"token-{abs(hash(token))}"
    path.write_text(token)
    return lambda: path.read_text()


def client(proxy: ProxyHandle, api_key: str | Callable[[], str]) -> openai.OpenAI:
    return openai.OpenAI(base_url=proxy.base_url, api_key=api_key, max_retries=0)


def raw_chat(
    proxy: ProxyHandle, headers: dict[str, str], query: str = "", body: bytes | None = None
) -> tuple[int, dict[str, str], bytes]:
    if body is None:
        body = json.dumps({"model": "gpt-4o-mini", "messages": MESSAGES}).encode()
    request = urllib.request.Request(
        proxy.base_url + "/chat/completions" + query,
        data=body,
        headers={"Content-Type": "application/json", **headers},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def metrics_text(proxy: ProxyHandle) -> str:
    with urllib.request.urlopen(proxy.root_url + "/metrics", timeout=5) as response:
        return str(response.read().decode())


def assert_nowhere(proxy: ProxyHandle, upstream: Upstream, *secrets: str) -> None:
    """The tokens reached no log line, metric, or upstream header."""
    exposed = proxy.log.getvalue() + metrics_text(proxy)
    exposed += json.dumps(upstream.fake.seen.headers)
    for secret in secrets:
        assert secret not in exposed
        assert secret.split(".")[2] not in exposed  # not even the signature part


def test_listed_app_is_served_and_attributed(
    start_identity: Callable[..., ProxyHandle],
    upstream: Upstream,
    issuer: tuple[FakeIssuer, str],
    cluster_key: SigningKey,
    tmp_path: Path,
) -> None:
    proxy = start_identity("require")
    token = mint(cluster_key, "team-b", "batch")
    sdk = client(proxy, token_file(tmp_path, token))
    for _ in range(2):
        chat = sdk.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        assert chat.choices[0].message.content == "pong"
    stream = sdk.chat.completions.create(
        model="gpt-4o-mini",
        messages=MESSAGES,
        stream=True,
        stream_options={"include_usage": True},
    )
    assert [c for c in stream]
    calls = proxy.calls(3)
    assert [c["client"] for c in calls] == ["batch"] * 3
    text = metrics_text(proxy)
    assert metric(text, 'llm_proxy_client_requests_total{client="batch",status="200"}') == 3
    # 11 prompt tokens per call (fake upstream), the stream's usage chunk included
    assert metric(text, 'llm_proxy_client_tokens_total{client="batch",kind="prompt"}') == 33
    # The upstream saw the provider key only; the JWKS was fetched with the proxy's token.
    assert set(upstream.fake.seen.authorizations) == {f"Bearer {FAKE_KEY}"}
    assert issuer[0].fetch_authorizations[0] == f"Bearer {PROXY_OWN_TOKEN}"
    # Verified once, then served from the cache by the token's hash.
    assert len(proxy.running.state.identity.verifier._cache) == 1  # type: ignore[union-attr]
    assert_nowhere(proxy, upstream, token)
    assert PROXY_OWN_TOKEN not in proxy.log.getvalue()


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("other-audience", "audience is not 'llm-gateway'"),
        ("expired", "has expired"),
        ("other-signer", "signature does not verify"),
        ("unknown-kid", "key this cluster does not publish"),
        ("other-issuer", "not issued by this cluster"),
        ("not-yet-valid", "not valid yet"),
        ("garbage", "not a well-formed JWT"),
    ],
)
def test_invalid_tokens_get_401_naming_why(
    start_identity: Callable[..., ProxyHandle],
    upstream: Upstream,
    cluster_key: SigningKey,
    stranger_key: SigningKey,
    case: str,
    reason: str,
) -> None:
    proxy = start_identity("attribute")  # present but invalid: 401 in attribute mode too
    makers: dict[str, Callable[[], str]] = {
        "other-audience": lambda: mint(cluster_key, "team-b", "batch", audience="vault"),
        "expired": lambda: mint(cluster_key, "team-b", "batch", issued=1_000_000, lifetime=600),
        "other-signer": lambda: mint(stranger_key, "team-b", "batch"),
        "unknown-kid": lambda: mint(stranger_key, "team-b", "batch", kid="elsewhere"),
        "other-issuer": lambda: mint(cluster_key, "team-b", "batch", issuer="https://evil"),
        "not-yet-valid": lambda: mint(cluster_key, "team-b", "batch", issued=4_000_000_000),
        "garbage": lambda: "eyJhbGciOi.eyJzdWIi.c2lnLUxFQUtNRQ",
    }
    token = makers[case]()
    with pytest.raises(openai.AuthenticationError) as raised:
        client(proxy, token).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert raised.value.status_code == 401
    assert reason in raised.value.message
    assert raised.value.code == "invalid_token"
    assert token not in str(raised.value.body)
    assert token not in raised.value.response.text
    assert upstream.fake.seen.authorizations == []  # nothing reached the upstream
    assert proxy.calls(1)[0]["status"] == 401
    assert_nowhere(proxy, upstream, token)


def test_require_refuses_missing_token_and_unlisted_app(
    start_identity: Callable[..., ProxyHandle], upstream: Upstream, cluster_key: SigningKey
) -> None:
    proxy = start_identity("require")
    status, headers, body = raw_chat(proxy, {})
    assert status == 401
    assert json.loads(body)["error"]["code"] == "missing_token"
    assert headers["WWW-Authenticate"] == "Bearer"
    status, _, body = raw_chat(proxy, {"Authorization": "Bearer sk-dummy-not-a-jwt"})
    assert status == 401  # a dummy key is no identity in require mode
    token = mint(cluster_key, "team-z", "intruder")
    with pytest.raises(openai.PermissionDeniedError) as raised:
        client(proxy, token).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert raised.value.code == "unknown_client"
    assert "team-z/intruder is not a client" in raised.value.message
    assert upstream.fake.seen.authorizations == []
    text = metrics_text(proxy)
    assert metric(text, 'llm_proxy_client_requests_total{client="anonymous",status="401"}') == 2
    assert metric(text, 'llm_proxy_client_requests_total{client="other",status="403"}') == 1
    assert [c["client"] for c in proxy.calls(3)] == ["anonymous", "anonymous", "team-z/intruder"]
    assert_nowhere(proxy, upstream, token)


def test_attribute_serves_anonymous_and_unlisted_as_other(
    start_identity: Callable[..., ProxyHandle], upstream: Upstream, cluster_key: SigningKey
) -> None:
    proxy = start_identity("attribute")
    assert raw_chat(proxy, {})[0] == 200
    assert raw_chat(proxy, {"Authorization": "Bearer sk-dummy-keyless-app"})[0] == 200
    token = mint(cluster_key, "team-z", "newcomer")
    assert raw_chat(proxy, {"Authorization": f"Bearer {token}"})[0] == 200
    calls = proxy.calls(3)
    assert [c["client"] for c in calls] == ["anonymous", "anonymous", "team-z/newcomer"]
    text = metrics_text(proxy)
    assert metric(text, 'llm_proxy_client_requests_total{client="anonymous",status="200"}') == 2
    assert metric(text, 'llm_proxy_client_requests_total{client="other",status="200"}') == 1
    assert "newcomer" not in text  # the label is bounded: unlisted apps are `other`
    assert_nowhere(proxy, upstream, token)


def test_identity_off_keeps_todays_log_and_metrics(proxy: ProxyHandle) -> None:
    assert raw_chat(proxy, {"Authorization": "Bearer sk-dummy"})[0] == 200
    assert "client" not in proxy.calls(1)[0]
    assert "llm_proxy_client_requests" not in metrics_text(proxy)
    assert proxy.running.state.identity is None


def test_over_budget_gets_429_before_the_upstream_and_recovers_after_the_window(
    start_identity: Callable[..., ProxyHandle],
    upstream: Upstream,
    cluster_key: SigningKey,
    tmp_path: Path,
) -> None:
    proxy = start_identity("require")
    gate = proxy.running.state.identity
    assert gate is not None
    now = [1_800_000_000.0]  # a minute boundary, frozen: the windows are the clock's minutes
    gate.budgets.clock = lambda: now[0]
    chat = client(proxy, token_file(tmp_path, mint(cluster_key, "team-a", "chat")))
    batch = client(proxy, token_file(tmp_path, mint(cluster_key, "team-b", "batch")))
    chat.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)  # 12 tokens
    chat.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)  # 24 of 20
    served = len(upstream.fake.seen.authorizations)
    now[0] += 15
    with pytest.raises(openai.RateLimitError) as raised:
        chat.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    headers = raised.value.response.headers
    assert headers["Retry-After"] == "45"
    assert headers["x-ratelimit-limit-tokens"] == "20"
    assert headers["x-ratelimit-remaining-tokens"] == "0"
    assert headers["x-ratelimit-reset-tokens"] == "45s"
    assert raised.value.code == "rate_limit_exceeded"
    assert "20 tokens per minute" in raised.value.message
    assert len(upstream.fake.seen.authorizations) == served  # the upstream saw no call
    # Another app is unaffected meanwhile.
    batch.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    now[0] += 46  # the next minute
    chat.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    statuses = [(c["client"], c["status"]) for c in proxy.calls(5)]
    assert statuses == [("chat", 200), ("chat", 200), ("chat", 429), ("batch", 200), ("chat", 200)]


def test_stream_usage_is_charged(
    start_identity: Callable[..., ProxyHandle], cluster_key: SigningKey, tmp_path: Path
) -> None:
    proxy = start_identity("require")
    sdk = client(proxy, token_file(tmp_path, mint(cluster_key, "team-a", "chat")))
    for _ in range(2):  # 11 prompt + 5 completion tokens each
        stream = sdk.chat.completions.create(
            model="gpt-4o-mini",
            messages=MESSAGES,
            stream=True,
            stream_options={"include_usage": True},
        )
        list(stream)
    with pytest.raises(openai.RateLimitError):
        sdk.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)


def test_signing_key_rotation_is_picked_up_and_refetch_is_bounded(
    start_identity: Callable[..., ProxyHandle],
    issuer: tuple[FakeIssuer, str],
    cluster_key: SigningKey,
) -> None:
    fake, _ = issuer
    proxy = start_identity("require")
    assert (
        raw_chat(proxy, {"Authorization": f"Bearer {mint(cluster_key, 'team-b', 'batch')}"})[0]
        == 200
    )
    assert len(fake.fetch_authorizations) == 1  # the start's fetch, shared by that call
    gate = proxy.running.state.identity
    assert gate is not None
    gate.jwks.refetch_min_seconds = 1.0
    time.sleep(1.05)
    fetches = len(fake.fetch_authorizations)
    rotated = SigningKey("cluster-key-2")
    fake.keys.append(rotated)  # the cluster rotates its signing key
    fake_kid = SigningKey("made-up")
    for _ in range(5):  # unknown kids again and again: at most one refetch per interval
        assert (
            raw_chat(proxy, {"Authorization": f"Bearer {mint(fake_kid, 'team-b', 'batch')}"})[0]
            == 401
        )
    assert len(fake.fetch_authorizations) == fetches + 1
    # The new key arrived with that refetch: its tokens verify without another one.
    assert (
        raw_chat(proxy, {"Authorization": f"Bearer {mint(rotated, 'team-b', 'batch')}"})[0] == 200
    )
    assert len(fake.fetch_authorizations) == fetches + 1


def test_unreachable_jwks_answers_503_not_401(
    start_identity: Callable[..., ProxyHandle],
    issuer: tuple[FakeIssuer, str],
    upstream: Upstream,
    cluster_key: SigningKey,
) -> None:
    issuer[0].failing = True
    proxy = start_identity("require")
    status, headers, body = raw_chat(
        proxy, {"Authorization": f"Bearer {mint(cluster_key, 'team-b', 'batch')}"}
    )
    assert status == 503
    assert json.loads(body)["error"]["code"] == "identity_unavailable"
    assert "HTTP 403" in json.loads(body)["error"]["message"]
    assert headers["Retry-After"] == "5"
    assert upstream.fake.seen.authorizations == []


def test_over_admission_is_bounded_by_the_calls_in_flight(
    start_identity: Callable[..., ProxyHandle],
    upstream: Upstream,
    cluster_key: SigningKey,
) -> None:
    """Tokens are charged when a call ends, so calls admitted together can overshoot the
    budget by at most the calls in flight; after that the app is refused."""
    limit, per_call, concurrency = 60, 12, 16  # 5 calls' worth of tokens; 16 at once
    clients = [{**CLIENTS[0], "tokensPerMinute": limit}]
    proxy = start_identity("require", clients=json.dumps(clients))
    gate = proxy.running.state.identity
    assert gate is not None
    gate.budgets.clock = lambda: 1_800_000_010.0
    token = mint(cluster_key, "team-a", "chat")
    sdk = openai.AsyncOpenAI(base_url=proxy.base_url, api_key=token, max_retries=0)

    async def one() -> int:
        try:
            await sdk.chat.completions.create(
                model="gpt-4o-mini",
                messages=MESSAGES,
                extra_headers={"x-fake-behaviour": "slow:0.3"},  # all in flight together
            )
        except openai.RateLimitError:
            return 0
        return 1

    async def burst() -> int:
        results = await asyncio.gather(*(one() for _ in range(concurrency)))
        await sdk.close()
        return sum(results)

    admitted = asyncio.run(burst())
    used = admitted * per_call
    print(f"\nburst of {concurrency}: {admitted} admitted, {used} tokens for a budget of {limit}")
    assert admitted == concurrency  # none was charged yet when all were admitted
    assert used <= limit + concurrency * per_call
    status, headers, _ = raw_chat(proxy, {"Authorization": f"Bearer {token}"})
    assert status == 429  # charged now: refused until the window ends
    assert headers["x-ratelimit-remaining-tokens"] == "0"


def test_each_process_enforces_its_share_of_a_budget() -> None:
    spec = ClientSpec.model_validate(
        {**CLIENTS[0], "requestsPerMinute": 10, "tokensPerMinute": 100, "tokensPerDay": 1001}
    )
    budgets = Budgets([spec], shares=4)  # e.g. 2 replicas x 2 workers
    budgets.clock = lambda: 1_800_000_000.0
    budget = budgets.by_name["chat"]
    assert budget.requests_minute is not None
    assert budget.tokens_minute is not None
    assert budget.tokens_day is not None
    assert (budget.requests_minute.limit, budget.tokens_minute.limit) == (3, 25)  # rounded up
    assert budget.tokens_day.limit == 251
    assert [budgets.admit("chat") for _ in range(3)] == [None, None, None]
    refused = budgets.admit("chat")
    assert refused is not None
    assert (refused.kind, refused.period, refused.retry_after) == ("requests", "minute", 60)
    budgets.clock = lambda: 1_800_000_060.0  # the next minute
    assert budgets.admit("chat") is None
    budgets.charge("chat", 300)  # over the day's share too
    budgets.clock = lambda: 1_800_000_130.0  # minutes later, the same UTC day
    day = budgets.admit("chat")
    assert day is not None
    assert (day.kind, day.period) == ("tokens", "day")
    response = rate_limited("chat", day, 1_800_000_130.0).to_response()
    assert response.headers["x-should-retry"] == "false"
    assert response.headers["Retry-After"] == str(day.retry_after)
    assert response.headers["x-ratelimit-reset-tokens"].endswith("s")
    assert duration(3723) == "1h2m3s"
    assert duration(59.6) == "1m0s"


def test_identity_outside_a_pod_needs_a_jwks_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(ValidationError, match="KUBERNETES_SERVICE_HOST"):
        Settings(identity_mode="require")
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    settings = Settings(identity_mode="require", workers=2, identity_shares=3)
    config = identity_config(settings, dict(os.environ))
    assert config.jwks_url == "https://10.0.0.1:443/openid/v1/jwks"
    assert config.shares == 6  # replicas x workers


def test_identity_off_does_not_load_the_jwt_library() -> None:
    """No start-up time or memory for PyJWT and cryptography unless identity is on."""
    probe = (
        "import io, sys; from proxy.app import ProxyState; from proxy.settings import Settings; "
        "ProxyState(Settings(), io.StringIO()); "
        "print(sorted(m for m in ('jwt', 'cryptography') if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.stdout.strip() == "[]", done.stderr


# Per-app model lists: `chat` may use gpt-4o-mini only; `batch` has no list of its own.
LISTED = [{**CLIENTS[0], "allowedModels": ["gpt-4o-mini"]}, CLIENTS[1]]


def test_an_app_asking_for_a_model_outside_its_list_gets_403_before_the_upstream(
    start_identity: Callable[..., ProxyHandle],
    upstream: Upstream,
    cluster_key: SigningKey,
    tmp_path: Path,
) -> None:
    proxy = start_identity("require", clients=json.dumps(LISTED))
    chat_token, batch_token = (
        mint(cluster_key, "team-a", "chat"),
        mint(cluster_key, "team-b", "batch"),
    )
    chat = client(proxy, token_file(tmp_path, chat_token))
    chat.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    served = len(upstream.fake.seen.authorizations)
    with pytest.raises(openai.PermissionDeniedError) as raised:
        chat.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert raised.value.code == "model_not_allowed"
    assert raised.value.message.endswith(
        " - Model 'gpt-4o' is not allowed for client 'chat'; its allowed models: gpt-4o-mini."
    )
    with pytest.raises(openai.PermissionDeniedError):
        chat.embeddings.create(model="text-embedding-3-small", input="x")
    with pytest.raises(openai.PermissionDeniedError) as in_tools:  # a tool runs its model too
        chat.responses.create(
            model="gpt-4o-mini",
            input="draw",
            tools=[{"type": "image_generation", "model": "gpt-image-1"}],
        )
    assert "'gpt-image-1' is not allowed for client 'chat'" in in_tools.value.message
    with pytest.raises(openai.PermissionDeniedError) as in_form:  # multipart: the form field
        chat.audio.transcriptions.create(model="whisper-1", file=("a.wav", b"RIFF....WAVE"))
    assert "'whisper-1' is not allowed for client 'chat'" in in_form.value.message
    status, _, body = raw_chat(
        proxy, {"Authorization": f"Bearer {chat_token}"}, query="?model=gpt-4o"
    )
    assert (status, json.loads(body)["error"]["code"]) == (403, "model_not_allowed")
    assert len(upstream.fake.seen.authorizations) == served  # the upstream saw none of them
    # Another app without a list of its own is unaffected.
    batch = client(proxy, token_file(tmp_path, batch_token))
    assert batch.chat.completions.create(model="gpt-4o", messages=MESSAGES).choices
    refused = [c for c in proxy.calls(7) if c["status"] == 403]
    assert [(c["client"], c["model"]) for c in refused] == [
        ("chat", "gpt-4o"),
        ("chat", "text-embedding-3-small"),
        ("chat", "gpt-image-1"),
        ("chat", "whisper-1"),
        ("chat", None),  # refused on its query, before the body was read
    ]
    assert_nowhere(proxy, upstream, chat_token, batch_token)


def test_an_apps_list_fails_closed_like_the_proxys_allowlist(
    start_identity: Callable[..., ProxyHandle],
    upstream: Upstream,
    cluster_key: SigningKey,
) -> None:
    """Files and batches hide their model: refused for a listed app, forwarded for others."""
    proxy = start_identity("require", clients=json.dumps(LISTED))
    chat = client(proxy, mint(cluster_key, "team-a", "chat"))
    with pytest.raises(openai.PermissionDeniedError) as raised:
        chat.files.list()
    assert raised.value.code == "path_not_allowed"
    status, _, body = raw_chat(
        proxy, {"Authorization": f"Bearer {mint(cluster_key, 'team-a', 'chat')}"}, body=b"{}"
    )
    assert (status, json.loads(body)["error"]["code"]) == (400, "model_required")
    assert upstream.fake.seen.authorizations == []
    batch = client(proxy, mint(cluster_key, "team-b", "batch"))
    batch.with_options(max_retries=0).models.list()  # no list: nothing restricts it
    assert len(upstream.fake.seen.authorizations) == 1


def test_the_proxys_allowlist_still_answers_for_models_it_refuses_to_everyone(
    start_identity: Callable[..., ProxyHandle],
    upstream: Upstream,
    cluster_key: SigningKey,
) -> None:
    apps = [{**CLIENTS[0], "allowedModels": ["gpt-4o-mini"]}, CLIENTS[1]]
    proxy = start_identity("require", clients=json.dumps(apps), allowed_models="gpt-4o-mini,gpt-4o")
    chat = client(proxy, mint(cluster_key, "team-a", "chat"))
    with pytest.raises(openai.PermissionDeniedError) as everyone:
        chat.chat.completions.create(model="o3", messages=MESSAGES)
    assert "allowed models: gpt-4o-mini, gpt-4o" in everyone.value.message
    assert "by this proxy" in everyone.value.message
    with pytest.raises(openai.PermissionDeniedError) as own:
        chat.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert "for client 'chat'" in own.value.message
    batch = client(proxy, mint(cluster_key, "team-b", "batch"))
    assert batch.chat.completions.create(model="gpt-4o", messages=MESSAGES).choices
    assert len(upstream.fake.seen.authorizations) == 1
