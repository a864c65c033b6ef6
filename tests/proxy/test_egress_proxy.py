"""The upstream is reached through the egress proxy the *_PROXY variables name."""

from collections.abc import Callable, Iterator

import httpx
import pytest
from aiohttp import web

from proxy.egress import egress_proxy_for
from tests.support.proxy import FAKE_KEY, LoopThread, ProxyHandle

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


class ForwardProxy:
    """A forward proxy on loopback that answers absolute-form requests itself."""

    def __init__(self) -> None:
        self.targets: list[str] = []
        self.authorizations: list[str | None] = []

    async def handle(self, request: web.BaseRequest) -> web.Response:
        self.targets.append(str(request.url))
        self.authorizations.append(request.headers.get("Authorization"))
        return web.json_response({"object": "chat.completion", "choices": []})


@pytest.fixture
def forward_proxy(upstream_loop: LoopThread) -> Iterator[tuple[ForwardProxy, int]]:
    fake = ForwardProxy()

    async def start() -> tuple[web.ServerRunner, int]:
        runner = web.ServerRunner(web.Server(fake.handle))
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        return runner, runner.addresses[0][1]

    runner, port = upstream_loop.run(start())
    yield fake, port
    upstream_loop.run(runner.cleanup())


def test_upstream_goes_through_http_proxy_named_in_the_environment(
    monkeypatch: pytest.MonkeyPatch,
    start_proxy: Callable[..., ProxyHandle],
    forward_proxy: tuple[ForwardProxy, int],
) -> None:
    fake, port = forward_proxy
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")  # the test's own client goes direct
    # Only the egress proxy can reach this host: `.invalid` never resolves.
    proxy = start_proxy(upstream="http://api.upstream.invalid/v1")

    reply = httpx.post(f"{proxy.base_url}/chat/completions", json=CHAT, timeout=10)

    assert reply.status_code == 200
    assert fake.targets == ["http://api.upstream.invalid/v1/chat/completions"]
    assert fake.authorizations == [f"Bearer {FAKE_KEY}"]


def test_no_proxy_keeps_the_upstream_direct(
    monkeypatch: pytest.MonkeyPatch, start_proxy: Callable[..., ProxyHandle], upstream
) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    proxy = start_proxy()

    reply = httpx.post(f"{proxy.base_url}/chat/completions", json=CHAT, timeout=10)

    assert reply.status_code == 200
    assert upstream.fake.seen.authorizations[-1] == f"Bearer {FAKE_KEY}"


def test_egress_proxy_follows_scheme_and_no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    assert egress_proxy_for("https://api.openai.com/v1") is None
    monkeypatch.setenv("HTTPS_PROXY", "http://egress.internal:3128")
    assert egress_proxy_for("https://api.openai.com/v1") == "http://egress.internal:3128"
    assert egress_proxy_for("http://llm.internal/v1") is None
    monkeypatch.setenv("NO_PROXY", ".openai.com")
    assert egress_proxy_for("https://api.openai.com/v1") is None
