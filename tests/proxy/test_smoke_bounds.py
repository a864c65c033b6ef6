"""`python -m proxy smoke` against a hostile answer stays bounded.

The "gateway" here is a small aiohttp server on loopback that answers endlessly,
trickles, or puts terminal escape sequences in its error body.
"""

import asyncio
import resource
import time
from collections.abc import Callable, Iterator

import pytest
from aiohttp import web

from proxy.smoke_client import run_smoke
from tests.support.proxy import LoopThread


@pytest.fixture
def hostile(upstream_loop: LoopThread) -> Iterator[Callable[[str], str]]:
    """Serve one behaviour by name; returns the base URL."""
    runners: list[web.ServerRunner] = []

    async def handle(request: web.BaseRequest) -> web.StreamResponse:
        behaviour = request.app_behaviour  # type: ignore[attr-defined]
        response = web.StreamResponse(status=200 if behaviour != "escapes" else 500)
        response.content_type = "application/json"
        if behaviour == "escapes":
            body = b'{"error":{"code":"x","message":"\\u001b[2J\\u001b]0;pwned\\u0007 boom"}}'
            return web.Response(status=500, body=body, content_type="application/json")
        await response.prepare(request)
        for _ in range(2000 if behaviour == "endless" else 30):  # 128 MiB, or 6 s of trickle
            await response.write(b" " * (65536 if behaviour == "endless" else 1))
            if behaviour == "trickle":
                await asyncio.sleep(0.2)
        return response

    def start(behaviour: str) -> str:
        async def serve() -> int:
            async def with_behaviour(request: web.BaseRequest) -> web.StreamResponse:
                request.app_behaviour = behaviour  # type: ignore[attr-defined]
                return await handle(request)

            server = web.Server(with_behaviour, handler_cancellation=True)
            runner = web.ServerRunner(server, access_log=None, shutdown_timeout=0.1)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", 0).start()
            runners.append(runner)
            return int(runner.addresses[0][1])

        return f"http://127.0.0.1:{upstream_loop.run(serve())}/v1"

    yield start
    for runner in runners:
        upstream_loop.run(runner.cleanup())


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def test_an_endless_reply_is_cut_at_the_cap(hostile: Callable[[str], str]) -> None:
    url = hostile("endless")
    before = peak_rss_mib()
    ok, line = run_smoke(url, "gpt-4o-mini", timeout=10)
    assert not ok
    assert "over 1048576 bytes" in line
    assert peak_rss_mib() - before < 50  # was: grew without bound (2.2 GB seen)


def test_an_endless_readyz_is_cut_at_the_cap(hostile: Callable[[str], str]) -> None:
    ok, line = run_smoke(hostile("endless"), "m", timeout=10, expect_key="abc", key_wait=0)
    assert not ok
    assert "no proxy at" in line


def test_a_trickling_reply_meets_one_overall_deadline(hostile: Callable[[str], str]) -> None:
    began = time.monotonic()
    ok, line = run_smoke(hostile("trickle"), "gpt-4o-mini", timeout=1.0)
    assert not ok
    assert time.monotonic() - began < 3  # per-read timeouts alone: never
    assert "within 1 s" in line


def test_terminal_escapes_in_an_error_body_are_printed_escaped(
    hostile: Callable[[str], str],
) -> None:
    ok, line = run_smoke(hostile("escapes"), "gpt-4o-mini", timeout=5)
    assert not ok
    assert "\x1b" not in line
    assert "\x07" not in line
    assert "\\x1b[2J" in line
