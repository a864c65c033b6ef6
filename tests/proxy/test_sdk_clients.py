"""The official openai SDK, sync and async, through the proxy with a dummy key."""

import socket

import openai
import pytest

from tests.support.proxy import CLIENT_DUMMY_KEY, FAKE_KEY, ProxyHandle, Upstream


def sync_client(proxy: ProxyHandle) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=proxy.base_url,
        api_key=CLIENT_DUMMY_KEY,
        default_headers={"api-key": "client-azure-style", "x-api-key": "client-x"},
        max_retries=0,
    )


def async_client(proxy: ProxyHandle) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=proxy.base_url, api_key=CLIENT_DUMMY_KEY, max_retries=0)


def assert_only_proxy_key_reached(upstream: Upstream) -> None:
    seen = upstream.fake.seen
    assert seen.authorizations, "upstream got no request"
    assert set(seen.authorizations) == {f"Bearer {FAKE_KEY}"}
    assert all(headers == {} for headers in seen.credential_headers)


def test_sync_sdk_chat_embeddings_models_responses(proxy: ProxyHandle, upstream: Upstream) -> None:
    client = sync_client(proxy)
    chat = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "ping"}]
    )
    assert chat.choices[0].message.content == "pong"
    assert chat.usage is not None
    assert chat.usage.prompt_tokens == 11

    embeddings = client.embeddings.create(model="text-embedding-3-small", input=["a", "b"])
    assert [e.index for e in embeddings.data] == [0, 1]

    models = client.models.list()
    assert "gpt-4o-mini" in [m.id for m in models]

    response = client.responses.create(model="gpt-4o-mini", input="ping")
    assert response.output_text == "pong"

    assert_only_proxy_key_reached(upstream)
    assert [c["path"] for c in proxy.calls(4)] == [
        "/v1/chat/completions",
        "/v1/embeddings",
        "/v1/models",
        "/v1/responses",
    ]


def test_sync_sdk_stream_reports_usage_in_access_log(
    proxy: ProxyHandle, upstream: Upstream
) -> None:
    client = sync_client(proxy)
    stream = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "ping"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "w0 w1 w2 w3 w4 "
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 5

    (call,) = proxy.calls(1)
    assert call["streamed"] is True
    assert call["promptTokens"] == 11
    assert call["completionTokens"] == 5
    assert_only_proxy_key_reached(upstream)


def test_stream_without_include_usage_is_not_altered(
    proxy: ProxyHandle, upstream: Upstream
) -> None:
    client = sync_client(proxy)
    chunks = list(
        client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "ping"}], stream=True
        )
    )
    assert all(c.usage is None for c in chunks)
    (call,) = proxy.calls(1)
    assert call["streamed"] is True
    assert "promptTokens" not in call


async def test_async_sdk_chat_stream_embeddings_models_responses(
    proxy: ProxyHandle, upstream: Upstream
) -> None:
    client = async_client(proxy)
    chat = await client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "ping"}]
    )
    assert chat.choices[0].message.content == "pong"

    stream = await client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "ping"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    pieces = [c.choices[0].delta.content or "" async for c in stream if c.choices]
    assert "".join(pieces) == "w0 w1 w2 w3 w4 "

    embeddings = await client.embeddings.create(model="text-embedding-3-small", input="a")
    assert len(embeddings.data) == 1
    models = [m.id async for m in client.models.list()]
    assert "text-embedding-3-small" in models

    response = await client.responses.create(model="gpt-4o-mini", input="ping")
    assert response.output_text == "pong"
    assert response.usage is not None
    assert response.usage.output_tokens == 2

    events = await client.responses.create(model="gpt-4o-mini", input="ping", stream=True)
    kinds = [event.type async for event in events]
    assert kinds[0] == "response.created"
    assert kinds[-1] == "response.completed"

    await client.close()
    assert_only_proxy_key_reached(upstream)
    by_path = [(c["path"], c["streamed"], c.get("completionTokens")) for c in proxy.calls(6)]
    assert by_path == [
        ("/v1/chat/completions", False, 1),
        ("/v1/chat/completions", True, 5),
        ("/v1/embeddings", False, None),
        ("/v1/models", False, None),
        ("/v1/responses", False, 2),
        ("/v1/responses", True, 2),
    ]


def test_upstream_error_status_reaches_sdk_as_typed_error(proxy: ProxyHandle) -> None:
    client = sync_client(proxy)
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "ping"}],
            extra_headers={"x-fake-behaviour": "status:429"},
        )
    (call,) = proxy.calls(1)
    assert call["status"] == 429


def test_query_string_and_method_are_preserved(proxy: ProxyHandle, upstream: Upstream) -> None:
    client = sync_client(proxy)
    client.models.list(extra_query={"limit": "2", "after": "a b"})
    assert upstream.fake.seen.paths == ["/v1/models?limit=2&after=a+b"]


def test_absolute_form_request_target_keeps_the_path(
    proxy: ProxyHandle, upstream: Upstream
) -> None:
    # RFC 9112 §3.2.2: servers must accept `GET http://host/path HTTP/1.1` too.
    with socket.create_connection(("127.0.0.1", proxy.running.port), timeout=3) as sock:
        sock.sendall(
            b"GET http://llm-proxy.example/v1/models?limit=2 HTTP/1.1\r\n"
            b"Host: llm-proxy.example\r\nConnection: close\r\n\r\n"
        )
        assert sock.recv(1024).startswith(b"HTTP/1.1 200")
    assert upstream.fake.seen.paths == ["/v1/models?limit=2"]
