"""A proxy pod on this machine: `python -m proxy serve` with its workers, read by its log lines."""

import json
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from tests.support.proxy import ROOT

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}]}
AUTH = {"Authorization": "Bearer sk-client-dummy"}


class Pod:
    """A `python -m proxy` supervisor with its workers, and its log lines so far."""

    def __init__(self, env: dict[str, str]) -> None:
        base = {k: v for k, v in os.environ.items() if not k.startswith("LLM_PROXY_")}
        began = time.perf_counter()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "proxy", "serve"],
            cwd=ROOT,
            env={**base, **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        self.lines: list[dict[str, Any]] = []
        self.listening = self.wait_for("listening", 40)  # generous: a loaded 2-core machine
        self.startup_seconds = time.perf_counter() - began
        self.port = int(self.listening["port"])
        self.worker_pids = set(self.listening.get("workerPids", ()))

    @property
    def root(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_for(self, event: str, seconds: float) -> dict[str, Any]:
        """The next log line of `event` (bounded wait)."""
        assert self.process.stdout is not None
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.process.stdout], [], [], 0.1)
            if ready:
                raw = self.process.stdout.readline()
                if not raw:
                    break
                self.lines.append(json.loads(raw))
                if self.lines[-1]["event"] == event:
                    return self.lines[-1]
        raise AssertionError(f"no {event!r} line within {seconds} s: {self.lines[-5:]}")

    def stop(self) -> None:
        """SIGTERM (the pod's drain), then SIGKILL if it is still there after 15 s."""
        if self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)

    def answering_workers(self, tries: int = 200) -> set[int]:
        """Worker pids seen on /readyz, a fresh connection per call, until all have answered."""
        seen: set[int] = set()
        for _ in range(tries):
            seen.add(httpx.get(self.root + "/readyz", timeout=5).json()["worker"])
            if seen >= self.worker_pids:
                break
        return seen


def children(pid: int) -> set[int]:
    """The pod's worker pids; the supervisor's key-read threads come and go meanwhile."""
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            found.update(int(c) for c in (task / "children").read_text().split())
        except FileNotFoundError:
            continue  # a thread that ended between listing and reading
    return found
