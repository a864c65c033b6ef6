"""Start `python -m proxy` as a real process and read its JSON log lines."""

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass

import httpx

from tests.support.proxy import ROOT


@dataclass
class ProxyProcess:
    process: subprocess.Popen[str]
    lines: list[dict[str, object]]
    port: int
    startup_seconds: float

    @property
    def root_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def read_rest(self) -> list[dict[str, object]]:
        assert self.process.stdout is not None
        rest = [json.loads(line) for line in self.process.stdout.read().splitlines() if line]
        self.lines.extend(rest)
        return self.lines


def launch(
    env_overrides: dict[str, str], args: list[str], python: str = sys.executable
) -> ProxyProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLM_PROXY_")}
    env.update(env_overrides)
    began = time.perf_counter()
    process = subprocess.Popen(
        [python, "-m", "proxy", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    lines: list[dict[str, object]] = []
    for raw in process.stdout:
        lines.append(json.loads(raw))
        if lines[-1]["event"] == "listening":
            port = lines[-1]["port"]
            assert isinstance(port, int)
            while httpx.get(f"http://127.0.0.1:{port}/healthz").status_code != 200:
                time.sleep(0.01)  # pragma: no cover - listening means serving
            return ProxyProcess(process, lines, port, time.perf_counter() - began)
    process.kill()
    raise AssertionError(f"proxy did not start: {process.stderr.read() if process.stderr else ''}")
