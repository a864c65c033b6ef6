"""The key follows the mounted file, kubelet swap included, with no failed call."""

import asyncio
import json
import re
import time
from collections.abc import Callable
from pathlib import Path

import aiohttp
import httpx

from fakes.kubelet_secret_dir import KubeletSecretDir
from proxy.fingerprint import key_fingerprint
from proxy.key_file import LiveKey
from proxy.keysource import KeySource
from tests.support.proxy import FAKE_KEY, SECOND_KEY, ProxyHandle, Upstream

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


async def ready_fingerprint(session: aiohttp.ClientSession, proxy: ProxyHandle) -> str | None:
    async with session.get(proxy.root_url + "/readyz") as response:
        fingerprint = (await response.json())["keyFingerprint"]
        return None if fingerprint is None else str(fingerprint)


async def test_rotation_under_concurrent_load_fails_no_request(
    proxy: ProxyHandle, upstream: Upstream, secret_dir: KubeletSecretDir
) -> None:
    statuses: list[int] = []
    stop = asyncio.Event()
    reload_seconds: list[float] = []

    async def worker(session: aiohttp.ClientSession) -> None:
        while not stop.is_set():
            stream = len(statuses) % 3 == 0
            body = {**CHAT, "stream": stream}
            async with session.post(proxy.base_url + "/chat/completions", json=body) as response:
                await response.read()
                statuses.append(response.status)

    async with aiohttp.ClientSession() as session:
        workers = [asyncio.create_task(worker(session)) for _ in range(16)]
        keys = [SECOND_KEY, FAKE_KEY, SECOND_KEY, FAKE_KEY, SECOND_KEY]
        for key in keys:
            await asyncio.sleep(0.25)
            swapped_at = time.perf_counter()
            secret_dir.write(key)
            while await ready_fingerprint(session, proxy) != key_fingerprint(key):  # noqa: ASYNC110
                await asyncio.sleep(0.01)
            reload_seconds.append(time.perf_counter() - swapped_at)
        await asyncio.sleep(0.25)
        stop.set()
        await asyncio.gather(*workers)

    assert len(statuses) > 50
    assert set(statuses) == {200}, f"failed calls: {[s for s in statuses if s != 200]}"
    assert max(reload_seconds) < 1.0
    seen = upstream.fake.seen.authorizations
    assert set(seen) == {f"Bearer {FAKE_KEY}", f"Bearer {SECOND_KEY}"}
    assert seen[-1] == f"Bearer {SECOND_KEY}"  # the last swap won
    reloads = [json.loads(line) for line in proxy.log_lines() if '"key_reloaded"' in line]
    assert [r["keyFingerprint"] for r in reloads] == [key_fingerprint(k) for k in keys]


def test_key_removed_then_restored(
    proxy: ProxyHandle, upstream: Upstream, secret_dir: KubeletSecretDir
) -> None:
    def wait_ready(expected: int) -> httpx.Response:
        deadline = time.monotonic() + 2
        while (response := httpx.get(proxy.root_url + "/readyz")).status_code != expected:
            assert time.monotonic() < deadline, response.text
            time.sleep(0.02)
        return response

    assert wait_ready(200).json() == {
        "status": "ready",
        "keyFingerprint": key_fingerprint(FAKE_KEY),
    }
    secret_dir.write("")
    wait_ready(503)
    response = httpx.post(proxy.base_url + "/chat/completions", json=CHAT)
    assert response.status_code == 503
    secret_dir.write(SECOND_KEY)
    assert wait_ready(200).json()["keyFingerprint"] == key_fingerprint(SECOND_KEY)
    assert httpx.post(proxy.base_url + "/chat/completions", json=CHAT).status_code == 200
    assert upstream.fake.seen.authorizations == [f"Bearer {SECOND_KEY}"]


def fingerprint_of(keys: KeySource) -> str | None:
    return None if keys.current is None else keys.current.fingerprint


def test_a_single_failed_read_keeps_the_live_key(tmp_path: Path) -> None:
    key_file = tmp_path / "apiKey"
    key_file.write_text(FAKE_KEY)
    events: list[tuple[LiveKey | None, str]] = []
    keys = KeySource(key_file, 1.0, lambda key, result: events.append((key, result)))
    asyncio.run(keys.load())
    key_file.write_text("")  # e.g. a writer that truncates before writing
    keys.check()
    assert keys.current is not None
    assert keys.current.value == FAKE_KEY
    key_file.write_text(SECOND_KEY + "\n")
    keys.check()
    assert keys.current.value == SECOND_KEY
    assert keys.current.authorization == f"Bearer {SECOND_KEY}"
    key_file.unlink()
    keys.check()
    keys.check()
    assert fingerprint_of(keys) is None
    assert [result for _, result in events] == ["initial", "reloaded", "missing"]


def test_live_key_repr_hides_the_key() -> None:
    key = LiveKey.from_text(FAKE_KEY + "\n")
    assert FAKE_KEY not in repr(key)
    assert key.fingerprint == key_fingerprint(FAKE_KEY)


def test_start_proxy_reports_fingerprint(start_proxy: Callable[..., ProxyHandle]) -> None:
    proxy = start_proxy()
    listening = json.loads(next(line for line in proxy.log_lines() if '"listening"' in line))
    assert listening["keyFingerprint"] == key_fingerprint(FAKE_KEY)


def test_key_and_lifecycle_events_are_timestamped_like_calls(
    start_proxy: Callable[..., ProxyHandle], secret_dir: KubeletSecretDir
) -> None:
    proxy = start_proxy()
    secret_dir.write(SECOND_KEY)
    deadline = time.monotonic() + 3
    while '"key_reloaded"' not in proxy.log.getvalue():
        assert time.monotonic() < deadline
        time.sleep(0.01)
    events = [json.loads(line) for line in proxy.log_lines()]
    assert [e["event"] for e in events] == ["key_initial", "listening", "key_reloaded"]
    for event in events:
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", event["time"]), event
