"""Memory stays bounded under the largest bodies the cap allows.

Measured on a real `python -m proxy` process: its peak resident size (VmHWM) grows
by about one copy of each body in flight, not by what a parsed document would take.
"""

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.proxy.proxy_process import ProxyProcess, launch

MIB = 1024 * 1024
CAP = 16 * MIB  # the default LLM_PROXY_MAX_BODY_BYTES


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


@pytest.fixture
def process(proxy_env: dict[str, str]) -> Iterator[ProxyProcess]:
    proxy = launch({**proxy_env, "LLM_PROXY_MAX_BODY_BYTES": str(CAP)}, ["serve"])
    yield proxy
    proxy.process.terminate()
    proxy.process.wait(timeout=15)


def post_json(url: str, body: bytes) -> httpx.Response:
    headers = {"content-type": "application/json"}
    return httpx.post(url, content=body, headers=headers, timeout=60)


def test_a_cap_sized_body_of_tiny_arrays_does_not_balloon_memory(process: ProxyProcess) -> None:
    url = process.root_url + "/v1/chat/completions"
    assert post_json(url, b'{"model":"gpt-4o-mini","messages":[]}').status_code == 200
    before = peak_rss_mib(process.process.pid)
    unit = b"[],"
    body = b'{"model":"gpt-4o-mini","x":[' + unit * ((CAP - 40) // len(unit)) + b"[]]}"
    assert len(body) <= CAP
    response = post_json(url, body)
    grown = peak_rss_mib(process.process.pid) - before
    assert grown < 3 * CAP / MIB, f"peak RSS grew {grown:.0f} MiB"  # json.loads: ~400 MiB
    assert response.status_code == 400  # too many arrays to check: refused, cheaply


def test_concurrent_large_legitimate_bodies_cost_about_one_copy_each(
    process: ProxyProcess,
) -> None:
    url = process.root_url + "/v1/chat/completions"
    assert post_json(url, b'{"model":"gpt-4o-mini","messages":[]}').status_code == 200
    before = peak_rss_mib(process.process.pid)
    image = "data:image/png;base64," + "QUJD" * (3 * MIB)  # 12 MiB
    content = [{"type": "image_url", "image_url": {"url": image}}]
    body = json.dumps({"model": "gpt-4o", "messages": [{"role": "user", "content": content}]})
    statuses: list[int] = []

    def call() -> None:
        statuses.append(post_json(url, body.encode()).status_code)

    callers = [threading.Thread(target=call) for _ in range(4)]
    for caller in callers:
        caller.start()
    for caller in callers:
        caller.join(timeout=60)
    assert statuses == [200] * 4
    grown = peak_rss_mib(process.process.pid) - before
    assert grown < 4 * 1.6 * len(body) / MIB, f"peak RSS grew {grown:.0f} MiB"  # was ~1.8x
