"""Scrapes never get a busy worker killed; only a frozen one is.

A worker is made "busy" with SIGSTOP: its loop reads nothing, as one stuck in a
long CPU burst would. Meanwhile /metrics scrapes arrive on the pod.
"""

import contextlib
import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from proxy.server import run_worker
from proxy.settings import Settings
from proxy.workers import STUCK_SECONDS, Supervisor, _Worker
from tests.support.proxy import ROOT
from tests.support.workers import Pod, children


@pytest.fixture
def pod(proxy_env: dict[str, str]) -> Iterator[Pod]:
    started = Pod({**proxy_env, "LLM_PROXY_WORKERS": "2"})
    yield started
    started.stop()


def scrape(url: str) -> int:
    try:
        return httpx.get(url, timeout=3).status_code
    except httpx.HTTPError:
        return 0  # landed on the stopped worker


def test_scrapes_while_a_worker_is_busy_do_not_get_it_killed(pod: Pod) -> None:
    busy = min(pod.worker_pids)
    os.kill(busy, signal.SIGSTOP)
    try:
        statuses: list[int] = []
        deadline = time.monotonic() + 5  # one worker busy for 5 s while scrapes arrive
        with ThreadPoolExecutor(max_workers=48) as pool:
            while time.monotonic() < deadline and len(statuses) < 3000:
                statuses += pool.map(scrape, [pod.root + "/metrics"] * 96)
    finally:
        with contextlib.suppress(ProcessLookupError):  # killed: the assertions below say so
            os.kill(busy, signal.SIGCONT)
    time.sleep(0.5)
    assert os.path.exists(f"/proc/{busy}")  # was SIGKILLed within the 5 s
    assert children(pod.process.pid) == pod.worker_pids  # nobody killed, nobody replaced
    assert statuses.count(503) > 50  # the live worker answered "incomplete", many times
    assert httpx.get(pod.root + "/metrics", timeout=5).status_code == 200  # whole again


def test_a_supervisor_killed_while_owing_scrapes_leaves_workers_stopping_cleanly(
    proxy_env: dict[str, str],
) -> None:
    """The workers answer the owed scrapes 503 and exit without a traceback."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("LLM_PROXY_")}
    env = {**base, **proxy_env, "LLM_PROXY_WORKERS": "2", "LLM_PROXY_DRAIN_TIMEOUT": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "proxy", "serve"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        assert process.stderr is not None
        listening = next(
            line for raw in process.stdout if (line := json.loads(raw))["event"] == "listening"
        )
        os.kill(process.pid, signal.SIGSTOP)  # it takes the scrape requests, never answers
        with ThreadPoolExecutor(max_workers=4) as pool:
            pending = [
                pool.submit(scrape, f"http://127.0.0.1:{listening['port']}/metrics")
                for _ in range(4)
            ]
            time.sleep(0.5)
            process.kill()
            process.wait(timeout=5)
            statuses = [future.result() for future in pending]
        deadline = time.monotonic() + 10
        while any(os.path.exists(f"/proc/{pid}") for pid in listening["workerPids"]):
            assert time.monotonic() < deadline, "a worker outlived its supervisor"
            time.sleep(0.05)
        assert "Traceback" not in process.stderr.read()  # was a ConnectionResetError
        assert statuses == [503] * 4  # was: connections dropped without an answer
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=5)


def _supervisor(tmp_path: Path) -> Supervisor:
    (tmp_path / "apiKey").write_text("sk-unused")
    return Supervisor(Settings(key_file=tmp_path / "apiKey", workers=2), run_worker)


def test_a_send_to_a_worker_that_reads_nothing_never_blocks(tmp_path: Path) -> None:
    supervisor = _supervisor(tmp_path)
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    worker = _Worker(os.getpid(), ours)
    supervisor.selector.register(ours, selectors.EVENT_READ, worker)
    try:
        began = time.monotonic()
        for i in range(2000):  # ~2 MB: far past the socket's buffer
            supervisor._send(worker, {"key": "k" * 1000, "n": i})
        assert time.monotonic() - began < 1  # was a 2 s blocking send, then SIGKILL
        assert worker.outbox  # the rest waits for the socket, not the supervisor
        assert supervisor.selector.get_key(ours).events & selectors.EVENT_WRITE
    finally:
        supervisor.selector.close()
        ours.close()
        theirs.close()


def test_only_a_ping_unanswered_for_stuck_seconds_kills_a_worker(tmp_path: Path) -> None:
    supervisor = _supervisor(tmp_path)
    sleepers = [subprocess.Popen(["sleep", "30"]) for _ in range(2)]
    socks = []
    try:
        now = time.monotonic()
        for sleeper, late in zip(sleepers, (STUCK_SECONDS - 5, STUCK_SECONDS + 1), strict=True):
            ours, theirs = socket.socketpair()
            ours.setblocking(False)
            socks += [ours, theirs]
            worker = _Worker(sleeper.pid, ours, ping_sent=now - late, next_ping=now + 60)
            supervisor.workers[sleeper.pid] = worker
            supervisor.selector.register(ours, selectors.EVENT_READ, worker)
        supervisor._check_liveness(now)
        busy, frozen = sleepers
        assert frozen.wait(timeout=5) == -signal.SIGKILL
        assert busy.poll() is None  # busy for 25 s: alive
    finally:
        for sleeper in sleepers:
            sleeper.kill()
            sleeper.wait()
        supervisor.selector.close()
        for sock in socks:
            sock.close()
