"""Shared pieces of the proxy tests: fake keys, loop threads, server handles."""

import asyncio
import io
import json
import threading
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx

from fakes.openai_upstream import FakeUpstream
from proxy.server import RunningProxy

ROOT = Path(__file__).resolve().parents[2]
FAKE_KEY = "sk-test-FAKEKEY-0123456789abcdefLEAKME"
SECOND_KEY = "sk-test-FAKEKEY-second-fedcba9876543210"
CLIENT_DUMMY_KEY = "sk-client-dummy-should-never-reach-upstream"

T = TypeVar("T")


class LoopThread:
    """An event loop running forever in a daemon thread."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 15) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)


@dataclass
class Upstream:
    fake: FakeUpstream
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"


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

    def calls(self, expected: int) -> list[dict[str, Any]]:
        """The access-log records, once `expected` of them are there.

        The proxy records a call just after its last byte is sent, so a client on
        another thread can see the response a moment before the log line exists.
        """
        deadline = time.monotonic() + 3
        while True:
            records = [json.loads(line) for line in self.log_lines()]
            found = [r for r in records if r.get("event") == "call"]
            if len(found) >= expected or time.monotonic() > deadline:
                return found
            time.sleep(0.005)


def metric(text: str, series: str) -> float:
    """The value of one exposition line, e.g. `name{label="v"} 2.0`."""
    for line in text.splitlines():
        name, _, value = line.rpartition(" ")
        if name == series:
            return float(value)
    raise AssertionError(f"{series} not in metrics:\n{text}")


def assert_openai_error(response: httpx.Response, status: int, code: str) -> str:
    """An answer of the proxy's own: the status, OpenAI's error shape, no key; its message."""
    assert response.status_code == status
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert set(error) == {"message", "type", "code"}
    assert error["code"] == code
    assert FAKE_KEY not in response.text
    assert "FAKEKEY" not in response.text
    return str(error["message"])
