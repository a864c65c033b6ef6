"""Issue 18, finding 3: scrapes never get a busy worker killed; only a frozen one is.

A worker is made "busy" with SIGSTOP: its loop reads nothing, as one stuck in a
long CPU burst would. Meanwhile /metrics scrapes arrive on the pod.
"""

import contextlib
import os
import signal
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.proxy.test_workers import Pod, children


@pytest.fixture
def pod(proxy_env: dict[str, str]) -> Iterator[Pod]:
    started = Pod({**proxy_env, "LLM_PROXY_WORKERS": "2"})
    yield started
    started.stop()


def scrape(url: str) -> int:
    try:
        return httpx.get(url, timeout=1.5).status_code
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
