"""`python -m proxy` as a process: env vars and flags, SIGTERM drain, smoke."""

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from proxy.cli import main
from tests.proxy.proxy_process import ProxyProcess, launch
from tests.support.proxy import FAKE_KEY, ROOT, ProxyHandle, Upstream


@pytest.fixture
def running(proxy_env: dict[str, str]) -> Iterator[ProxyProcess]:
    proxy = launch(proxy_env, ["serve"])
    yield proxy
    if proxy.process.poll() is None:
        proxy.process.kill()
        proxy.process.wait()


def test_serve_reads_env_vars_and_sigterm_drains_in_flight(
    running: ProxyProcess, upstream: Upstream
) -> None:
    assert running.startup_seconds < 5  # the benchmark measures the real figure
    ready = httpx.get(running.root_url + "/readyz").json()
    assert ready["status"] == "ready"
    results: list[int] = []

    def slow_call() -> None:
        response = httpx.post(
            running.root_url + "/v1/chat/completions",
            json={"model": "gpt-4o-mini", "messages": []},
            headers={"x-fake-behaviour": "slow:1"},
            timeout=10,
        )
        results.append(response.status_code)

    caller = threading.Thread(target=slow_call)
    caller.start()
    deadline = time.monotonic() + 3
    while not upstream.fake.seen.paths and time.monotonic() < deadline:
        time.sleep(0.01)
    running.process.send_signal(signal.SIGTERM)
    caller.join(timeout=10)
    assert results == [200]  # the in-flight call finished despite the SIGTERM
    assert running.process.wait(timeout=10) == 0
    events = [line["event"] for line in running.read_rest()]
    assert events[-3:] == ["draining", "call", "stopped"]
    assert running.process.stderr is not None
    everything = json.dumps(running.lines) + running.process.stderr.read()
    assert FAKE_KEY not in everything
    assert "FAKEKEY" not in everything
    with pytest.raises(httpx.ConnectError):
        httpx.get(running.root_url + "/healthz")


def test_flags_override_env_and_serve_is_the_default_command(
    proxy_env: dict[str, str], upstream: Upstream
) -> None:
    proxy = launch({**proxy_env, "LLM_PROXY_UPSTREAM": "http://127.0.0.1:9/v1"}, [
        "--upstream", upstream.url, "--allowed-models", "gpt-4o-mini", "--disabled",
    ])  # fmt: skip
    try:
        listening = proxy.lines[-1]
        assert listening["upstream"] == upstream.url
        assert listening["allowedModels"] == ["gpt-4o-mini"]
        assert httpx.get(proxy.root_url + "/readyz").json()["reason"] == "disabled"
    finally:
        proxy.process.terminate()
        proxy.process.wait(timeout=10)


def test_invalid_setting_exits_2_naming_the_env_var(proxy_env: dict[str, str]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "proxy", "serve"],
        cwd=ROOT,
        env={**os.environ, **proxy_env, "LLM_PROXY_PORT": "eighty"},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert "LLM_PROXY_PORT" in result.stderr


def test_smoke_succeeds_through_the_proxy(
    proxy: ProxyHandle, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["smoke", "--url", proxy.base_url, "--model", "gpt-4o-mini"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("ok: gpt-4o-mini replied 'pong' in ")
    assert " ms via " in out


def test_smoke_reports_401_when_nothing_adds_a_key(
    upstream: Upstream, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["smoke", "--url", upstream.url]) == 1
    (line,) = capsys.readouterr().out.splitlines()
    assert line.startswith("smoke failed: HTTP 401 from 127.0.0.1: missing_api_key:")


def test_smoke_reports_connection_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["smoke", "--url", "http://127.0.0.1:9/v1"]) == 1
    (line,) = capsys.readouterr().out.splitlines()
    assert line.startswith("smoke failed: cannot connect to http://127.0.0.1:9/v1/chat/completions")


def test_smoke_reports_timeout(capsys: pytest.CaptureFixture[str]) -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(5)  # accepts the connection, never answers
    try:
        url = f"http://127.0.0.1:{server.getsockname()[1]}/v1"
        assert main(["smoke", "--url", url, "--timeout", "0.3"]) == 1
    finally:
        server.close()
    (line,) = capsys.readouterr().out.splitlines()
    assert line == f"smoke failed: no answer from {url}/chat/completions within 0.3 s"


def test_smoke_command_runs_as_a_process(proxy: ProxyHandle) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "proxy", "smoke", "--url", proxy.base_url],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "'pong'" in result.stdout
