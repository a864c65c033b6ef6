"""Small pure pieces: settings parsing, header filtering, usage parsing, requirement pins."""

import os
import re
from pathlib import Path

import pytest
from multidict import CIMultiDict, CIMultiDictProxy
from pydantic import ValidationError

from proxy.contract import DEFAULT_UPSTREAM, KEY_FILE
from proxy.headers import upstream_headers
from proxy.settings import Settings
from proxy.usage import UsageTail, parse_usage
from tests.support.proxy import ROOT


def test_settings_defaults_match_the_contract(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("LLM_PROXY_"):
            monkeypatch.delenv(name)
    settings = Settings()
    assert (settings.host, settings.port) == ("127.0.0.1", 8080)
    assert settings.upstream == DEFAULT_UPSTREAM == "https://api.openai.com/v1"
    assert settings.key_file == Path(KEY_FILE) == Path("/etc/llm-gateway/secret/apiKey")
    assert settings.allowed_models == ()
    assert settings.disabled is False


def test_settings_read_llm_proxy_env_vars(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLM_PROXY_HOST", "0.0.0.0")
    monkeypatch.setenv("LLM_PROXY_PORT", "9000")
    monkeypatch.setenv("LLM_PROXY_UPSTREAM", "http://upstream.local:8000/v1/")
    monkeypatch.setenv("LLM_PROXY_KEY_FILE", "/run/key")
    monkeypatch.setenv("LLM_PROXY_ALLOWED_MODELS", " gpt-4o-mini, ,text-embedding-3-small ")
    monkeypatch.setenv("LLM_PROXY_MAX_IN_FLIGHT", "7")
    monkeypatch.setenv("LLM_PROXY_MAX_BODY_BYTES", "1234")
    monkeypatch.setenv("LLM_PROXY_CONNECT_TIMEOUT", "1.5")
    monkeypatch.setenv("LLM_PROXY_READ_TIMEOUT", "30")
    monkeypatch.setenv("LLM_PROXY_DISABLED", "true")
    settings = Settings()
    assert settings.host == "0.0.0.0"
    assert settings.port == 9000
    assert settings.upstream == "http://upstream.local:8000/v1"
    assert settings.key_file == Path("/run/key")
    assert settings.allowed_models == ("gpt-4o-mini", "text-embedding-3-small")
    assert (settings.max_in_flight, settings.max_body_bytes) == (7, 1234)
    assert (settings.connect_timeout, settings.read_timeout) == (1.5, 30)
    assert settings.disabled is True


def test_allowed_models_accepts_a_json_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLM_PROXY_ALLOWED_MODELS", '["gpt-4o", "o3"]')
    assert Settings().allowed_models == ("gpt-4o", "o3")


def test_upstream_must_be_http_url() -> None:
    with pytest.raises(ValidationError, match="http"):
        Settings(upstream="api.openai.com/v1")


def test_hop_by_hop_and_client_credentials_are_not_forwarded() -> None:
    incoming = CIMultiDictProxy(
        CIMultiDict(
            [
                ("Host", "proxy"),
                ("Connection", "keep-alive, X-Hop"),
                ("X-Hop", "1"),
                ("Keep-Alive", "timeout=5"),
                ("Transfer-Encoding", "chunked"),
                ("TE", "trailers"),
                ("Upgrade", "h2c"),
                ("Proxy-Authorization", "Basic eA=="),
                ("Authorization", "Bearer client"),
                ("api-key", "client"),
                ("X-Api-Key", "client"),
                ("Accept-Encoding", "br, zstd"),
                ("OpenAI-Beta", "assistants=v2"),
                ("X-Custom", "a"),
                ("X-Custom", "b"),
            ]
        )
    )
    headers = upstream_headers(incoming, "Bearer sk-proxy")
    assert headers.getall("Authorization") == ["Bearer sk-proxy"]
    assert headers["Accept-Encoding"] == "gzip, deflate"  # what the proxy can decode
    assert headers["OpenAI-Beta"] == "assistants=v2"
    assert headers.getall("X-Custom") == ["a", "b"]
    kept = {name.lower() for name in headers}
    assert kept == {"authorization", "accept-encoding", "openai-beta", "x-custom"}


def test_usage_is_read_from_json_and_sse_tails() -> None:
    body = b'{"id":"x","choices":[{"message":{"content":"say \\"usage\\": {"}}],'
    body += b'"usage":{"prompt_tokens":12,"completion_tokens":34,"total_tokens":46}}'
    assert parse_usage(body) == (12, 34)
    responses = b'"usage":{"input_tokens":5,"input_tokens_details":{"cached_tokens":1},'
    responses += b'"output_tokens":6,"total_tokens":11}'
    assert parse_usage(responses) == (5, 6)
    stream = b'data: {"choices":[{"delta":{}}],"usage":null}\n\n' * 3
    assert parse_usage(stream) == (None, None)
    tail = UsageTail()
    for chunk in [b"x" * 10_000, stream, b'data: {"choices":[],"usage":{"prompt_tokens":1,']:
        tail.feed(chunk)
    tail.feed(b'"completion_tokens":2}}\n\ndata: [DONE]\n\n')
    assert tail.tokens() == (1, 2)


def test_requirements_are_fully_pinned_with_hashes() -> None:
    text = (ROOT / "proxy" / "requirements.txt").read_text()
    requirements = [line for line in text.splitlines() if re.match(r"^[A-Za-z]", line)]
    assert {"aiohttp", "prometheus-client", "pydantic-settings", "httpx", "uvloop"} <= {
        re.split(r"[=;\s]", line)[0] for line in requirements
    }
    for line in requirements:
        assert "==" in line, line
    blocks = re.split(r"\n(?=[A-Za-z])", text.split("\n", 6)[-1])
    assert all("--hash=sha256:" in block for block in blocks if re.match(r"[A-Za-z]", block))


def test_usage_is_read_from_the_last_usage_object_only() -> None:
    from proxy.usage import parse_usage

    body = (
        b'{"usage": {"prompt_tokens": 1, "completion_tokens": 2}} "usage"usage": '
        b'{"prompt_tokens": 5, "completion_tokens": 7}'
    )
    assert parse_usage(body) == (5, 7)
    assert parse_usage(b'"usage" "usage": 3') == (None, None)


def test_stdout_log_lines_leave_in_whole_line_batches_no_larger_than_pipe_buf() -> None:
    """Workers share one stdout pipe: each write(2) must hold whole lines, atomically."""
    import os
    import select

    from proxy.logstream import LineBatchWriter

    read_end, write_end = os.pipe()
    try:
        writer = LineBatchWriter(write_end)
        lines = [f'{{"n":{i},"pad":"{"x" * (i % 300)}"}}\n' for i in range(200)]
        for line in lines:
            writer.write(line)
        assert select.select([read_end], [], [], 0)[0] == []  # nothing before the flush
        writer.flush()
        os.close(write_end)
        write_end = -1
        received = b""
        while chunk := os.read(read_end, 1 << 20):
            received += chunk
        assert received.decode() == "".join(lines)
    finally:
        os.close(read_end)
        if write_end >= 0:
            os.close(write_end)


def test_checked_upstream_urls_are_remembered_but_bad_paths_always_refused() -> None:
    import pytest
    from yarl import URL

    from proxy.errors import ProxyError
    from proxy.target import UpstreamTarget

    target = UpstreamTarget(URL("https://upstream.example/base/v1"))
    good = URL("/v1/chat/completions?x=1")
    assert target.checked_url(good) == URL("https://upstream.example/base/v1/chat/completions?x=1")
    assert target.checked_url(good) is target.checked_url(good)
    for _ in range(2):
        with pytest.raises(ProxyError):
            target.checked_url(URL("/v1/a/%2e%2e/files", encoded=True))


def test_usage_tail_reads_the_whole_body_exactly_however_it_is_cut() -> None:
    """Fed chunk by chunk, cut anywhere (inside the key too), the tail finds what
    parse_usage finds in the whole body, and holds no more than one usage object's range."""
    import random

    from proxy.usage import COUNT_SPAN, UsageTail, parse_usage

    rng = random.Random(5)
    pieces = [b'"usage"', b":", b" ", b"\n", b"{", b"}", b"null", b'"prompt_tokens": 3', b", ",
              b'"completion_tokens":%d', b'"input_tokens":7', b"x" * 300, b'"usa', b'ge"',
              b'"usage": {"prompt_tokens": 1, "completion_tokens": 2}']  # fmt: skip
    for _ in range(3000):
        body = b"".join(
            piece % rng.randint(0, 99) if b"%d" in piece else piece
            for piece in rng.choices(pieces, k=rng.randint(0, 40))
        )
        cuts = sorted(rng.sample(range(len(body) + 1), min(len(body) + 1, rng.randint(0, 15))))
        tail = UsageTail()
        for start, end in zip([0, *cuts], [*cuts, len(body)], strict=True):
            tail.feed(body[start:end])
        assert tail.tokens() == parse_usage(body), body
        assert len(tail._best or b"") <= 64 + COUNT_SPAN  # the key, some spaces, the counts
