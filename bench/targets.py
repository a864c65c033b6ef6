"""The processes under test: how each target starts, where it is pinned, how it stops.

Load generator and upstream run on LOAD_CPU; every proxying target on PROXY_CPU.
Each child raises its priority when it may (the machine is shared), and a target
may run inside a CPU-quota cgroup (the workers rows).
"""

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bench.cgroup import CpuQuota
from bench.cpu import descendants, start_ticks

ROOT = Path(__file__).resolve().parent.parent
LOAD_CPU, PROXY_CPU = 0, 1


def pinned(cpu: int, quota: CpuQuota | None = None) -> Callable[[], None]:
    """preexec_fn: pin a child to one CPU, raise its priority, enter a quota group."""

    def setup() -> None:
        if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) >= 2:
            os.sched_setaffinity(0, {cpu})
        with contextlib.suppress(PermissionError):
            os.nice(-10)
        if quota is not None:
            quota.enter()

    return setup


def raise_group_priority() -> None:
    """Give this session's autogroup nice -10, so the children's own nice -10 counts.

    With kernel autogrouping on (as here) CPU time is first split between sessions,
    whatever a process's nice value: another session's busy job would take half of
    CPU 1 from the target under test. Every child of the benchmark shares its session.
    """
    autogroup = Path("/proc/self/autogroup")
    with contextlib.suppress(OSError):
        if autogroup.exists():
            autogroup.write_text("-10")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Target:
    """One row of the tables: its base URL and the processes whose CPU it costs."""

    name: str
    base_url: str
    process: subprocess.Popen[str] | None = None
    quota: CpuQuota | None = None
    pids: list[int] = field(default_factory=list)
    concurrencies: tuple[int, ...] = (1, 16, 64)
    streams: bool = True
    token_file: Path | None = None  # the caller's bearer token, for a proxy requiring one

    started: dict[int, int | None] = field(default_factory=dict)

    def settle(self) -> None:
        """List the process tree once it serves (workers have forked by then)."""
        if self.process is not None:
            self.pids = descendants(self.process.pid)
            self.started = {pid: start_ticks(pid) for pid in self.pids}

    def stop_leftovers(self) -> None:
        """Kill listed processes that outlived the stopped root (same pid, same start)."""
        deadline = time.monotonic() + 5
        for pid, started in self.started.items():

            def alive(pid: int = pid, started: int | None = started) -> bool:
                return started is not None and start_ticks(pid) == started

            while alive() and time.monotonic() < deadline:
                time.sleep(0.05)
            if alive():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.stop_leftovers()
        if self.quota is not None:
            self.quota.remove()
            self.quota = None


def wait_ready(url: str, process: subprocess.Popen[str], timeout: float = 30) -> None:
    """Poll until `url` answers 200 (or, for a bare server, anything at all)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args!r} exited with {process.returncode}")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.005)
    raise TimeoutError(f"{url} not ready in {timeout} s")


def spawn_printing_port(args: list[str], cpu: int) -> tuple[subprocess.Popen[str], int]:
    """A Python server of this repo that prints its port on its first line."""
    process = subprocess.Popen(
        [sys.executable, *args], cwd=ROOT, stdout=subprocess.PIPE, text=True,
        preexec_fn=pinned(cpu),
    )  # fmt: skip
    assert process.stdout is not None
    return process, int(process.stdout.readline())


@dataclass
class ProxySpec:
    """How to start one proxy row: which source tree, how many workers, what CPU budget."""

    name: str
    tree: Path = ROOT
    workers: int | None = None  # None: leave LLM_PROXY_WORKERS unset (the default)
    cpus: float | None = None  # a quota for each process of the tree, in CPUs
    concurrencies: tuple[int, ...] = (1, 16, 64)
    streams: bool = True
    max_in_flight: int | None = 512  # None: leave LLM_PROXY_MAX_IN_FLIGHT unset (the default)
    env: dict[str, str] = field(default_factory=dict)  # more settings, e.g. identity
    token_file: Path | None = None  # the token the load generator sends (identity on)


def start_proxy(
    spec: ProxySpec, upstream: str, key_file: Path, log_path: Path
) -> tuple[Target, float]:
    """The full proxy (log, metrics, allowlist, key reload on); returns start-to-ready s."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLM_PROXY_")}
    env |= {
        "PYTHONPATH": str(spec.tree),
        "LLM_PROXY_PORT": str(port),
        "LLM_PROXY_UPSTREAM": upstream,
        "LLM_PROXY_KEY_FILE": str(key_file),
        "LLM_PROXY_ALLOWED_MODELS": "gpt-4o-mini,text-embedding-3-small",
    }
    if spec.max_in_flight is not None:
        env["LLM_PROXY_MAX_IN_FLIGHT"] = str(spec.max_in_flight)
    if spec.workers is not None:
        env["LLM_PROXY_WORKERS"] = str(spec.workers)
    env |= spec.env
    quota = None
    if spec.cpus is not None:
        quota = CpuQuota(spec.name.split(",")[-1].strip().replace(" ", "-"), spec.cpus)
    began = time.perf_counter()
    with log_path.open("a") as log:
        command = ["-m", "proxy", "serve"]
        process = subprocess.Popen(
            [sys.executable, *command], cwd=spec.tree, env=env, stdout=log,
            stderr=subprocess.STDOUT, text=True, preexec_fn=pinned(PROXY_CPU, quota),
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    target = Target(
        spec.name, url + "/v1", process, quota, [], spec.concurrencies, spec.streams,
        spec.token_file,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"{spec.name} exited with {process.returncode}; see {log_path}")
            try:
                if httpx.get(url + "/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.005)
        else:
            raise TimeoutError(f"{spec.name} not ready in 60 s; see {log_path}")
        ready = time.perf_counter() - began
        target.settle()
        wanted = 1 + spec.workers if spec.workers and spec.workers > 1 else 1
        deadline = time.monotonic() + 10
        while len(target.pids) < wanted and time.monotonic() < deadline:
            time.sleep(0.1)  # a supervisor forks its workers: list the tree once all are up
            target.settle()
        if quota is not None:
            quota.isolate([pid for pid in target.pids if pid != process.pid])
    except BaseException:
        target.stop()
        raise
    return target, ready


def peak_rss_mib(pids: list[int]) -> float:
    """The largest VmHWM among `pids`: peak resident memory of the biggest process."""
    peaks = [0.0]
    for pid in pids:
        with contextlib.suppress(FileNotFoundError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peaks.append(int(line.split()[1]) / 1024)
    return max(peaks)


def stop_all(targets: list[Target], upstream: subprocess.Popen[str], work: Path) -> None:
    """End of a run, whatever happened: every target, then the fake upstream (by its
    process, never by name), then the scratch dir."""
    for target in targets:
        target.stop()
    upstream.terminate()
    upstream.wait(timeout=30)
    shutil.rmtree(work, ignore_errors=True)
