"""Fixtures: a fake OpenAI upstream and the proxy, each on its own loop thread.

Servers run on background event loops so the tests can drive them with the
official openai SDK, sync and async alike, over real HTTP on 127.0.0.1.
"""

import io
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from fakes.kubelet_secret_dir import KubeletSecretDir
from fakes.openai_upstream import start_fake_upstream
from proxy.server import start
from proxy.settings import Settings
from tests.support.proxy import FAKE_KEY, LoopThread, ProxyHandle, Upstream


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: builds a clean virtualenv (tens of seconds)")


@pytest.fixture(scope="session")
def upstream_loop() -> LoopThread:
    return LoopThread("fake-upstream")


@pytest.fixture(scope="session")
def proxy_loop() -> LoopThread:
    return LoopThread("proxy")


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


@pytest.fixture
def proxy_env(upstream: Upstream, secret_dir: KubeletSecretDir) -> dict[str, str]:
    return {
        "LLM_PROXY_HOST": "127.0.0.1",
        "LLM_PROXY_PORT": "0",
        "LLM_PROXY_UPSTREAM": upstream.url,
        "LLM_PROXY_KEY_FILE": str(secret_dir.key_file),
        "LLM_PROXY_DRAIN_TIMEOUT": "5",
    }
