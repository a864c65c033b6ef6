"""A steady stream of chat completions, plain and streamed, for the live-traffic scenarios.

One thread sends requests at a fixed rate through the proxy Service until stopped, or until
its own bounds (a request count and a duration) run out, whichever comes first. Every
outcome is kept, so a test can count failures and say exactly which ones they were.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import httpx

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "ping"}]}


@dataclass
class Outcome:
    """One request: when it started, whether it streamed, and how it ended."""

    started: float
    streamed: bool
    status: int | None
    error: str | None

    @property
    def ok(self) -> bool:
        return self.error is None and self.status == 200


@dataclass
class SteadyLoad:
    """Chat completions against `base_url` (an OpenAI base URL, …/v1) at `rate` per second."""

    base_url: str
    rate: float = 10.0
    max_requests: int = 5000
    max_seconds: float = 300.0
    outcomes: list[Outcome] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> SteadyLoad:
        self._thread = threading.Thread(target=self._run, name="steady-load", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> list[Outcome]:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        return self.outcomes

    def failures(self) -> list[Outcome]:
        return [outcome for outcome in self.outcomes if not outcome.ok]

    def _run(self) -> None:
        began = time.monotonic()
        interval = 1.0 / self.rate
        # A new connection per request, as many independent clients would make: kube-proxy
        # picks a pod per connection, so every replica gets its share of the load.
        no_reuse = httpx.Limits(max_keepalive_connections=0)
        with httpx.Client(base_url=self.base_url, timeout=10.0, limits=no_reuse) as client:
            for number in range(self.max_requests):
                if self._stop.is_set() or time.monotonic() - began > self.max_seconds:
                    return
                self.outcomes.append(self._one(client, streamed=number % 2 == 1))
                # Fixed schedule: a slow answer is not followed by a burst to catch up.
                pause = began + (number + 1) * interval - time.monotonic()
                if pause > 0:
                    self._stop.wait(pause)

    def _one(self, client: httpx.Client, *, streamed: bool) -> Outcome:
        started = time.time()
        try:
            if streamed:
                with client.stream("POST", "/chat/completions", json={**CHAT, "stream": True}) as r:
                    body = b"".join(r.iter_bytes())
                    complete = r.status_code != 200 or body.rstrip().endswith(b"data: [DONE]")
                    error = None if complete else "stream ended before [DONE]"
                    return Outcome(started, True, r.status_code, error)
            response = client.post("/chat/completions", json=CHAT)
            return Outcome(started, False, response.status_code, None)
        except httpx.HTTPError as exc:
            return Outcome(started, streamed, None, type(exc).__name__)
