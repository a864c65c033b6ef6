"""Drain within the grace period; a key path that blocks never freezes the proxy."""

import asyncio
import io
import json
import os
import select
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import proxy.key_file
import proxy.keysource
from fakes.kubelet_secret_dir import KubeletSecretDir
from proxy.server import start
from proxy.settings import Settings
from tests.support.proxy import ROOT, LoopThread, Upstream

STREAM = {"model": "gpt-4o-mini", "messages": [], "stream": True}


def settings_for(upstream: Upstream, key_file: Path, **overrides: Any) -> Settings:
    fields: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": 0,
        "upstream": upstream.url,
        "key_file": key_file,
        "key_poll_interval": 0.05,
    }
    return Settings(**{**fields, **overrides})


def test_drain_ends_within_its_timeout_and_reports_draining_meanwhile(
    proxy_loop: LoopThread, upstream: Upstream, secret_dir: KubeletSecretDir
) -> None:
    log = io.StringIO()
    settings = settings_for(upstream, secret_dir.key_file, drain_timeout=1.0)
    running = proxy_loop.run(start(settings, log))
    root = f"http://127.0.0.1:{running.port}"
    received: list[bytes] = []

    def endless_stream() -> None:  # ~20 s of chunks: longer than any drain
        headers = {"x-fake-behaviour": "chunks:200,chunk-delay:0.1"}
        url = root + "/v1/chat/completions"
        try:
            with httpx.stream("POST", url, json=STREAM, headers=headers, timeout=30) as reply:
                for chunk in reply.iter_raw():
                    received.append(chunk)
        except httpx.HTTPError:
            pass  # cut at the end of the drain: expected

    client = threading.Thread(target=endless_stream)
    client.start()
    deadline = time.monotonic() + 5
    while not received and time.monotonic() < deadline:
        time.sleep(0.01)
    began = time.monotonic()
    stopping = asyncio.run_coroutine_threadsafe(running.stop(), proxy_loop.loop)
    time.sleep(0.3)
    ready = httpx.get(root + "/readyz", timeout=2)
    assert ready.status_code == 503
    assert ready.json()["reason"] == "draining"
    stopping.result(timeout=10)
    elapsed = time.monotonic() - began
    client.join(timeout=10)
    assert elapsed < 1.0 + 1.5, f"drain took {elapsed:.1f} s for a 1 s drain timeout"
    events = [json.loads(line) for line in log.getvalue().splitlines()]
    assert events[-1]["event"] == "stopped"
    (call,) = [e for e in events if e["event"] == "call"]
    assert call["error"] == "drain_timeout"


def test_a_short_call_finishes_during_drain(
    proxy_loop: LoopThread, upstream: Upstream, secret_dir: KubeletSecretDir
) -> None:
    log = io.StringIO()
    running = proxy_loop.run(start(settings_for(upstream, secret_dir.key_file), log))
    root = f"http://127.0.0.1:{running.port}"
    results: list[int] = []
    caller = threading.Thread(
        target=lambda: results.append(
            httpx.post(
                root + "/v1/chat/completions",
                json={"model": "gpt-4o-mini", "messages": []},
                headers={"x-fake-behaviour": "slow:0.5"},
                timeout=10,
            ).status_code
        )
    )
    caller.start()
    deadline = time.monotonic() + 5
    while not upstream.fake.seen.paths and time.monotonic() < deadline:
        time.sleep(0.01)
    began = time.monotonic()
    proxy_loop.run(running.stop())
    caller.join(timeout=10)
    assert results == [200]
    assert time.monotonic() - began < 2  # returned as soon as the call was done


def read_lines_until(
    process: subprocess.Popen[str], event: str, seconds: float
) -> list[dict[str, Any]]:
    """Log lines up to `event`, or what came within `seconds` (never blocks longer)."""
    assert process.stdout is not None
    lines: list[dict[str, Any]] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        ready, _, _ = select.select([process.stdout], [], [], 0.1)
        if ready:
            raw = process.stdout.readline()
            if not raw:
                break
            lines.append(json.loads(raw))
            if lines[-1]["event"] == event:
                break
    return lines


@pytest.fixture
def launch_raw(proxy_env: dict[str, str]) -> Iterator[Any]:
    started: list[subprocess.Popen[str]] = []

    def launch(**env: str) -> subprocess.Popen[str]:
        base = {k: v for k, v in os.environ.items() if not k.startswith("LLM_PROXY_")}
        process = subprocess.Popen(
            [sys.executable, "-m", "proxy", "serve"],
            cwd=ROOT,
            env={**base, **proxy_env, **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        started.append(process)
        return process

    yield launch
    for process in started:
        process.kill()
        process.wait(timeout=10)


def test_a_fifo_at_the_key_path_does_not_stop_the_proxy_starting(
    launch_raw: Any, tmp_path: Path
) -> None:
    fifo = tmp_path / "apiKey"
    os.mkfifo(fifo)
    process = launch_raw(LLM_PROXY_KEY_FILE=str(fifo))
    lines = read_lines_until(process, "listening", 10)
    assert lines, "the proxy froze opening the FIFO"
    assert lines[-1]["event"] == "listening"
    port = lines[-1]["port"]
    assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200
    assert httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 503


def test_a_fifo_swapped_in_while_serving_does_not_freeze_it(
    launch_raw: Any, secret_dir: KubeletSecretDir
) -> None:
    process = launch_raw()
    lines = read_lines_until(process, "listening", 10)
    port = lines[-1]["port"]
    root = f"http://127.0.0.1:{port}"
    assert httpx.get(root + "/readyz", timeout=2).status_code == 200
    version = secret_dir.root / "..fifo_version"
    version.mkdir()
    os.mkfifo(version / "apiKey")
    os.symlink(version.name, secret_dir.root / "..data_tmp")
    os.replace(secret_dir.root / "..data_tmp", secret_dir.root / "..data")
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        assert httpx.get(root + "/healthz", timeout=2).status_code == 200
        if httpx.get(root + "/readyz", timeout=2).status_code == 503:
            break
        time.sleep(0.05)
    assert httpx.get(root + "/readyz", timeout=2).json()["reason"] == "key missing or empty"


def test_a_hung_key_read_times_out_and_the_proxy_serves_meanwhile(
    proxy_loop: LoopThread,
    upstream: Upstream,
    secret_dir: KubeletSecretDir,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    release = threading.Event()
    real_read = proxy.key_file.key_file_verdict

    def hung_read(key_file: Path) -> proxy.key_file.LiveKey | str:
        release.wait(timeout=8)  # like a read on a dead NFS mount
        return real_read(key_file)

    monkeypatch.setattr(proxy.key_file, "key_file_verdict", hung_read)
    monkeypatch.setattr(proxy.keysource, "READ_TIMEOUT", 0.3, raising=False)
    safety = threading.Timer(6, release.set)  # old code blocks the loop: unblock it eventually
    safety.start()
    try:
        began = time.monotonic()
        running = proxy_loop.run(start(settings_for(upstream, secret_dir.key_file), io.StringIO()))
        assert time.monotonic() - began < 2
        root = f"http://127.0.0.1:{running.port}"
        assert httpx.get(root + "/healthz", timeout=2).status_code == 200
        assert httpx.get(root + "/readyz", timeout=2).status_code == 503
        release.set()
        deadline = time.monotonic() + 3
        while httpx.get(root + "/readyz", timeout=2).status_code != 200:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        proxy_loop.run(running.stop())
    finally:
        release.set()
        safety.cancel()
