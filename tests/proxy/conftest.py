"""Fixtures: a fake OpenAI upstream and the proxy, each on its own loop thread.

Servers run on background event loops so the tests can drive them with the
official openai SDK, sync and async alike, over real HTTP on 127.0.0.1.
"""

import asyncio
import io
import sys
import threading
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # `bench` and `proxy` live at the repo root
    sys.path.insert(0, str(ROOT))

from kubelet import KubeletSecretDir  # noqa: E402

from bench.fake_upstream import FakeUpstream, start_fake_upstream  # noqa: E402
from proxy.server import RunningProxy, start  # noqa: E402
from proxy.settings import Settings  # noqa: E402

FAKE_KEY = "sk-test-FAKEKEY-0123456789abcdefLEAKME"
SECOND_KEY = "sk-test-FAKEKEY-second-fedcba9876543210"
CLIENT_DUMMY_KEY = "sk-client-dummy-should-never-reach-upstream"

T = TypeVar("T")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: builds a clean virtualenv (tens of seconds)")


class LoopThread:
    """An event loop running forever in a daemon thread."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 15) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)


@pytest.fixture(scope="session")
def upstream_loop() -> LoopThread:
    return LoopThread("fake-upstream")


@pytest.fixture(scope="session")
def proxy_loop() -> LoopThread:
    return LoopThread("proxy")


@dataclass
class Upstream:
    fake: FakeUpstream
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"


@pytest.fixture
def upstream(upstream_loop: LoopThread) -> Iterator[Upstream]:
    runner, fake, port = upstream_loop.run(start_fake_upstream())
    yield Upstream(fake, port)
    upstream_loop.run(runner.cleanup())


@pytest.fixture
def secret_dir(tmp_path: Path) -> KubeletSecretDir:
    secret = KubeletSecretDir(tmp_path / "secret")
    secret.write(FAKE_KEY)
    return secret


@dataclass
class ProxyHandle:
    running: RunningProxy
    log: io.StringIO

    @property
    def base_url(self) -> str:
        return self.running.base_url

    @property
    def root_url(self) -> str:
        return self.base_url.removesuffix("/v1")

    def log_lines(self) -> list[str]:
        return self.log.getvalue().splitlines()


@pytest.fixture
def start_proxy(
    proxy_loop: LoopThread, upstream: Upstream, secret_dir: KubeletSecretDir
) -> Iterator[Callable[..., ProxyHandle]]:
    started: list[ProxyHandle] = []

    def factory(**overrides: Any) -> ProxyHandle:
        fields: dict[str, Any] = {
            "host": "127.0.0.1",
            "port": 0,
            "upstream": upstream.url,
            "key_file": secret_dir.key_file,
            "key_poll_interval": 0.05,
            "drain_timeout": 2.0,
        }
        fields.update(overrides)
        log = io.StringIO()
        running = proxy_loop.run(start(Settings(**fields), log))
        handle = ProxyHandle(running, log)
        started.append(handle)
        return handle

    yield factory
    for handle in started:
        proxy_loop.run(handle.running.stop())


@pytest.fixture
def proxy(start_proxy: Callable[..., ProxyHandle]) -> ProxyHandle:
    return start_proxy()
