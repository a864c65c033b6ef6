"""A budgeted app's stream is charged even when it did not ask for usage, and the app sees
the stream it asked for: the proxy asks the upstream for usage and takes it out again.

The official openai SDK streams through the proxy (identity `require`) from a fake
upstream on loopback that sends usage only when asked (`"usage": null` in every event
and a usage-only event, as OpenAI does); a fake cluster issuer signs the tokens.
"""

import asyncio
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from fakes.cluster_issuer import FakeIssuer, SigningKey, mint, start_fake_issuer
from fakes.openai_upstream import DEFAULT_CHUNKS, PROMPT_TOKENS
from proxy.stream_usage import UsageOnlyFilter, ask_for_usage
from tests.support.proxy import LoopThread, ProxyHandle, Upstream, metric

TOKENS_PER_STREAM = PROMPT_TOKENS + DEFAULT_CHUNKS  # the fake's usage for one stream
CLIENTS: list[dict[str, Any]] = [
    # Two streams fit the minute's budget (the second is admitted below it), a third not.
    {"name": "chat", "namespace": "team-a", "serviceAccount": "chat", "tokensPerMinute": 20},
    {"name": "batch", "namespace": "team-b", "serviceAccount": "batch"},  # no budget
]
MESSAGES: Any = [{"role": "user", "content": "ping"}]


@pytest.fixture(scope="module")
def cluster_key() -> SigningKey:
    return SigningKey("stream-usage-key")


@pytest.fixture
def proxy(
    start_proxy: Callable[..., ProxyHandle],
    upstream_loop: LoopThread,
    cluster_key: SigningKey,
    tmp_path: Path,
) -> Iterator[ProxyHandle]:
    runner, port = upstream_loop.run(start_fake_issuer(FakeIssuer([cluster_key])))
    own = tmp_path / "own-token"
    own.write_text("proxy-own-token-FAKE")
    yield start_proxy(
        identity_mode="require",
        identity_jwks_url=f"http://127.0.0.1:{port}/openid/v1/jwks",
        identity_token_file=own,
        identity_ca_file=None,
        clients=json.dumps(CLIENTS),
    )
    upstream_loop.run(runner.cleanup())


def sdk(proxy: ProxyHandle, token: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=proxy.base_url, api_key=token, max_retries=0)


# Paced, the body is relayed from the socket callback (proxy.relay's tap); at once, the
# whole response is there before relaying starts and the copy loop sends it.
PACES = [pytest.param("chunk-delay:0.01", id="relayed"), pytest.param("", id="copied")]


def chunks(client: openai.OpenAI, pace: str = "", **options: Any) -> list[dict[str, Any]]:
    stream = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=MESSAGES,
        stream=True,
        extra_headers={"x-fake-behaviour": pace},
        **options,
    )
    return [chunk.model_dump(exclude_unset=True) for chunk in stream]


def raw_stream(proxy: ProxyHandle, token: str, body: dict[str, Any], pace: str) -> bytes:
    """The response body exactly as it left the proxy."""
    response = httpx.post(
        proxy.base_url + "/chat/completions",
        json=body,
        headers={"Authorization": f"Bearer {token}", "x-fake-behaviour": pace},
        timeout=10,
    )
    assert response.status_code == 200
    return response.content


@pytest.mark.parametrize("pace", PACES)
def test_budgeted_stream_without_usage_is_charged_and_unchanged_for_the_client(
    proxy: ProxyHandle, upstream: Upstream, cluster_key: SigningKey, pace: str
) -> None:
    gate = proxy.running.state.identity
    assert gate is not None
    now = [1_800_000_000.0]  # a minute boundary, frozen
    gate.budgets.clock = lambda: now[0]
    chat_token = mint(cluster_key, "team-a", "chat")
    batch_token = mint(cluster_key, "team-b", "batch")
    # What an app without a budget receives (the proxy passes that stream untouched).
    expected = chunks(sdk(proxy, batch_token), pace)
    assert all("usage" not in chunk for chunk in expected)
    assert [c["choices"][0]["delta"].get("content") for c in expected[1:-1]] == [
        f"w{i} " for i in range(DEFAULT_CHUNKS)
    ]

    chat = sdk(proxy, chat_token)
    assert chunks(chat, pace) == expected  # same chunks, no usage chunk, no `usage: null`
    assert chunks(chat, pace) == expected  # admitted: 16 of 20 tokens used before it
    with pytest.raises(openai.RateLimitError) as raised:
        chunks(chat, pace)
    assert raised.value.code == "rate_limit_exceeded"
    assert "20 tokens per minute" in raised.value.message
    assert len(upstream.fake.seen.authorizations) == 3  # the refused one never went up

    calls = proxy.calls(4)
    assert [(c["client"], c["status"]) for c in calls] == [
        ("batch", 200),
        ("chat", 200),
        ("chat", 200),
        ("chat", 429),
    ]
    assert "promptTokens" not in calls[0]  # the unbudgeted app's stream: not asked
    assert [c["promptTokens"] for c in calls[1:3]] == [PROMPT_TOKENS] * 2
    assert [c["completionTokens"] for c in calls[1:3]] == [DEFAULT_CHUNKS] * 2
    with httpx.Client() as http:
        text = http.get(proxy.root_url + "/metrics").text
    charged = metric(text, 'llm_proxy_client_tokens_total{client="chat",kind="completion"}')
    assert charged == 2 * DEFAULT_CHUNKS
    # The access log's bytesOut is what the client received, not what the upstream sent.
    assert calls[1]["bytesOut"] == calls[0]["bytesOut"]


@pytest.mark.parametrize("pace", PACES)
def test_the_client_receives_the_very_bytes_it_would_have_received(
    proxy: ProxyHandle, cluster_key: SigningKey, pace: str
) -> None:
    body = {"model": "gpt-4o-mini", "messages": MESSAGES, "stream": True}
    unbudgeted = raw_stream(proxy, mint(cluster_key, "team-b", "batch"), body, pace)
    budgeted = raw_stream(proxy, mint(cluster_key, "team-a", "chat"), body, pace)
    assert budgeted == unbudgeted
    assert b'"usage"' not in budgeted
    assert budgeted.endswith(b"data: [DONE]\n\n")
    assert proxy.calls(2)[1]["completionTokens"] == DEFAULT_CHUNKS


@pytest.mark.parametrize("pace", PACES)
def test_a_client_that_asked_for_usage_still_gets_it(
    proxy: ProxyHandle, cluster_key: SigningKey, pace: str
) -> None:
    token = mint(cluster_key, "team-a", "chat")
    received = chunks(sdk(proxy, token), pace, stream_options={"include_usage": True})
    assert received[-1]["choices"] == []
    assert received[-1]["usage"]["completion_tokens"] == DEFAULT_CHUNKS
    assert all(chunk["usage"] is None for chunk in received[:-1])


def rewritten(body: dict[str, Any] | bytes) -> dict[str, Any] | None:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    found = asyncio.run(ask_for_usage(raw))
    return None if found is None else json.loads(found)


def test_usage_is_asked_for_only_by_streams_that_did_not_ask() -> None:
    base: dict[str, Any] = {"model": "m", "messages": MESSAGES}
    assert rewritten({**base, "stream": True}) == {
        **base,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    other = {"include_obfuscation": False}
    assert rewritten({**base, "stream": True, "stream_options": other}) == {
        **base,
        "stream": True,
        "stream_options": {**other, "include_usage": True},
    }
    off = {"include_usage": False}
    assert rewritten({**base, "stream": True, "stream_options": off}) is not None
    assert rewritten({**base, "stream": True, "stream_options": {"include_usage": True}}) is None
    assert rewritten({**base, "stream": False}) is None  # OpenAI refuses stream_options then
    assert rewritten(base) is None
    # A key written with escapes is the same key to the upstream's decoder.
    escaped = rewritten(b'{"model":"m","str\\u0065am":true}')
    assert escaped == {"model": "m", "stream": True, "stream_options": {"include_usage": True}}
    # Duplicates: the rewritten body names each key once, so the upstream reads what we read.
    duplicated = rewritten(b'{"model":"m","stream":false,"stream":true}')
    assert duplicated == {"model": "m", "stream": True, "stream_options": {"include_usage": True}}


def sse(*documents: dict[str, Any] | str) -> bytes:
    return b"".join(
        b"data: " + (d.encode() if isinstance(d, str) else json.dumps(d).encode()) + b"\n\n"
        for d in documents
    )


@pytest.mark.parametrize("piece", [1, 2, 7, 64, 10_000])
def test_the_filter_removes_only_what_asking_added_however_the_bytes_arrive(piece: int) -> None:
    content = {"id": "x", "choices": [{"index": 0, "delta": {"content": '"usage": null}'}}]}
    plain = sse(content, {"id": "x", "choices": []}, "[DONE]")
    usage = {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}
    asked = sse(
        {**content, "usage": None},
        {"id": "x", "choices": [], "usage": None},
        {"id": "x", "choices": [], "usage": usage},
        "[DONE]",
    )

    def compact(data: bytes) -> bytes:  # OpenAI's own separators
        return data.replace(b", ", b",").replace(b": ", b":")

    for stream, expected in ((asked, plain), (compact(asked), compact(plain))):
        hidden = UsageOnlyFilter()
        out = [hidden.feed(stream[at : at + piece]) for at in range(0, len(stream), piece)]
        assert b"".join(out) + hidden.finish() == expected


def test_the_filter_passes_events_as_soon_as_they_end() -> None:
    hidden = UsageOnlyFilter()
    first = b'data: {"a": 1, "usage": null}\n\n'
    assert hidden.feed(first[:10]) == b""  # half an event: nothing a client could use
    assert hidden.feed(first[10:]) == b'data: {"a": 1}\n\n'
    assert hidden.feed(b"data: [DONE]") == b""
    assert hidden.finish() == b"data: [DONE]"
