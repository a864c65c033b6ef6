"""A worker's line to its supervisor (proxy.workers): key changes in, metrics out.

With LLM_PROXY_WORKERS > 1 the supervisor alone reads the key file and tells every
worker over a private socketpair made before the fork (never argv or env), so all
workers switch key within the same moment and /readyz shows one fingerprint. A
/metrics scrape that lands on any worker asks the supervisor for the other workers'
counts and answers the pod's totals. Messages are JSON lines.
"""

import asyncio
import contextlib
import json
import socket
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import Metric

from proxy.key_file import LiveKey
from proxy.keysource import KeySource
from proxy.observability import Metrics, Snapshot, call_families, key_families

SCRAPE_SECONDS = 2.0  # longer than the supervisor's own wait for the slowest worker
_LINE_LIMIT = 64 * 1024 * 1024  # a snapshot line: bounded series, but not tiny


class ScrapeIncomplete(Exception):
    """Some worker did not send its counts in time: the totals would be wrong."""


class _Families:
    """A one-off collector over already merged data."""

    def __init__(self, families: Iterator[Metric]) -> None:
        self._families = list(families)

    def collect(self) -> Iterator[Metric]:
        return iter(self._families)


class SupervisorLink:
    """The worker's end of the socketpair; `run()` handles messages until it closes."""

    def __init__(self, sock: socket.socket, keys: KeySource, metrics: Metrics) -> None:
        self._sock = sock
        self._keys = keys
        self._metrics = metrics
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._scrapes: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._next_scrape = 0

    async def connect(self) -> None:
        self._reader, self._writer = await asyncio.open_connection(
            sock=self._sock, limit=_LINE_LIMIT
        )

    async def run(self, on_lost: Callable[[], None]) -> None:
        """Serve the supervisor's messages; `on_lost` when it goes away (stop the worker)."""
        assert self._reader is not None, "connect() first"
        try:
            while line := await self._reader.readline():
                self._handle(json.loads(line))
        except ConnectionError:
            pass  # a supervisor killed mid-message resets the link: lost, like a clean close
        finally:
            for waiting in self._scrapes.values():  # owed answers never come: 503 at once
                if not waiting.done():
                    waiting.set_exception(ScrapeIncomplete("the supervisor is gone"))
            on_lost()

    def send(self, message: dict[str, Any]) -> None:
        if self._writer is not None and not self._writer.is_closing():
            self._writer.write(json.dumps(message, separators=(",", ":")).encode() + b"\n")

    def _handle(self, message: dict[str, Any]) -> None:
        if "key" in message:
            value = message["key"]
            self._keys.current = None if value is None else LiveKey.from_text(value)
            self._keys.source = message.get("source", self._keys.source)
            self._keys.api_status = message.get("api", self._keys.api_status)
        elif "snap" in message:
            self.send({"snap": message["snap"], "data": self._metrics.snapshot()})
        elif "ping" in message:
            self.send({"pong": message["ping"]})  # the loop runs: proxy.workers' liveness
        elif "merged" in message:
            waiting = self._scrapes.pop(message["merged"], None)
            if waiting is not None and not waiting.done():
                waiting.set_result(message)

    async def scrape(self) -> bytes:
        """The pod's metrics: this worker's counts plus every other worker's."""
        self._next_scrape += 1
        scrape_id = self._next_scrape
        answer: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._scrapes[scrape_id] = answer
        self.send({"scrape": scrape_id})
        try:
            async with asyncio.timeout(SCRAPE_SECONDS):
                merged = await answer
        except TimeoutError:
            raise ScrapeIncomplete("the supervisor did not answer") from None
        finally:
            self._scrapes.pop(scrape_id, None)
        if merged.get("missing"):
            raise ScrapeIncomplete(f"{merged['missing']} worker(s) did not answer")
        parts: list[Snapshot] = [self._metrics.snapshot(), *merged["parts"]]
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_Families(call_families(parts)))
        key = key_families(
            merged["key_loaded"],
            merged["key_reloads"],
            merged.get("key_fingerprint"),
            merged.get("key_source", "none"),
        )
        registry.register(_Families(key))
        return generate_latest(registry)

    def close(self) -> None:
        if self._writer is not None:
            with contextlib.suppress(Exception):
                self._writer.close()
