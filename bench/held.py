"""Held streams: N streamed completions held open at once, relayed chunk by chunk.

`python -m bench.held [--streams 100,500,1000] [--reps 2]` (also the last part of
`python -m bench`): for each rep, each N and each target (direct, the bare aiohttp
passthrough, nginx, the proxy, optionally another tree's proxy, and at the largest N
the proxy at its default maxInFlight) it starts the target fresh on CPU 1, reads its
idle RSS, runs bench.heldload on CPU 0 (the upstream shares CPU 0) and stops it.
Every stream is 50 chunks at 25 chunks/s (a 2 s completion; `--held-chunks` sets
another length: with 1,000 no completion ends in the window, so CPU/chunk is the
relay's alone, without the per-call work), each chunk stamped by the upstream with
its send time. Writes bench/out/held.json and the "Held streams"
section of RESULTS.md.
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import held_report
from bench.heldload import rss_kib
from bench.machine import machine_line, measured_commit
from bench.nginx import start_nginx
from bench.targets import (
    LOAD_CPU,
    PROXY_CPU,
    ROOT,
    ProxySpec,
    Target,
    pinned,
    raise_group_priority,
    spawn_printing_port,
    start_proxy,
    stop_all,
)
from fakes.kubelet_secret_dir import KubeletSecretDir

OUT = ROOT / "bench" / "out"
KEY = "sk-bench-FAKEKEY-held-aaaaaaaaaaaaaaa"
CHUNKS, DELAY = 50, 0.04  # 25 chunks/s, a 2 s completion
RAISED = 4096  # the proxy rows' maxInFlight: above every N measured


def run_load(target: Target, upstream: str, upstream_pid: int, n: int, timing: dict[str, float],
             chunks: int = CHUNKS) -> dict[str, Any]:  # fmt: skip
    spec = {
        "url": target.base_url, "upstream": upstream, "streams": n, "chunks": chunks,
        "delay": DELAY, **timing, "rss_pids": target.pids,
        "cpu": {"target": target.pids, "upstream": [upstream_pid]},
    }  # fmt: skip
    limit = sum(timing.values()) + 60
    result = subprocess.run(
        [sys.executable, "-m", "bench.heldload", json.dumps(spec)], cwd=ROOT, check=True,
        capture_output=True, text=True, preexec_fn=pinned(LOAD_CPU), timeout=limit,
    )  # fmt: skip
    return dict(json.loads(result.stdout))


class Starter:
    """Starts one target by row name, fresh each time (its idle RSS is the baseline)."""

    def __init__(self, args: argparse.Namespace, upstream: str, port: int, work: Path) -> None:
        self.args, self.upstream, self.port, self.work = args, upstream, port, work
        self.secret = KubeletSecretDir(work)
        self.secret.write(KEY)

    def names(self, n: int, largest: int) -> list[str]:
        names = [held_report.DIRECT, held_report.BARE]
        if not self.args.no_nginx:
            names.append(held_report.NGINX)
        names.append(held_report.PROXY)
        if self.args.before:
            names.append(held_report.BEFORE)
        if n == largest:
            names.append(held_report.DEFAULTS)
        if self.args.only:
            wanted = self.args.only.split(",")
            names = [name for name in names if name == held_report.DIRECT or name in wanted]
        return names

    def start(self, name: str) -> Target:
        if name == held_report.DIRECT:
            return Target(name, self.upstream)
        if name == held_report.BARE:
            process, port = spawn_printing_port(
                ["-m", "bench.passthrough", "aiohttp", self.upstream], PROXY_CPU
            )
            target = Target(name, f"http://127.0.0.1:{port}/v1", process)
            target.settle()
            return target
        if name == held_report.NGINX:
            return start_nginx(self.port, self.work, KEY, name)
        tree = Path(self.args.before) if name == held_report.BEFORE else self.args.proxy_tree
        raised = None if name == held_report.DEFAULTS else RAISED
        spec = ProxySpec(name, tree=tree, max_in_flight=raised)
        target, _ = start_proxy(spec, self.upstream, self.secret.key_file, OUT / "held-proxy.log")
        return target


def measure(args: argparse.Namespace, raw: dict[str, Any]) -> None:
    """Every (rep, N, target) once, targets in a rotated order each rep."""
    work = Path(tempfile.mkdtemp(prefix="llm-proxy-held-"))
    upstream_process, upstream_port = spawn_printing_port(["-m", "bench.upstream"], LOAD_CPU)
    upstream = f"http://127.0.0.1:{upstream_port}/v1"
    timing = {"ramp": args.ramp, "warmup": args.warmup, "window": args.window}
    runs: dict[str, list[dict[str, Any]]] = raw.setdefault("runs", {})
    starter = Starter(args, upstream, upstream_port, work)
    largest = max(args.held_streams)
    try:
        for rep in range(args.held_reps):
            for n in args.held_streams:
                names = starter.names(n, largest)
                shift = rep % len(names)
                for name in names[shift:] + names[:shift]:
                    target = starter.start(name)
                    try:
                        time.sleep(0.3)
                        idle = rss_kib(target.pids)
                        result = run_load(
                            target, upstream, upstream_process.pid, n, timing, args.chunks
                        )
                    finally:
                        target.stop()
                    result["rss_idle_kib"] = idle
                    result["load_average"] = os.getloadavg()[0]
                    runs.setdefault(f"{name}|{n}", []).append(result)
                    print(held_report.line(rep, name, result), flush=True)
    finally:
        stop_all([], upstream_process, work)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.held", description=__doc__)
    add_arguments(parser)
    parser.add_argument("--before", metavar="PATH", help="also run the proxy of this tree")
    parser.add_argument("--no-nginx", action="store_true", help="skip the nginx row")
    parser.add_argument("--proxy-tree", metavar="PATH", type=Path, default=ROOT)
    parser.add_argument("--only", default="", help="comma-separated row names (for iteration)")
    args = parser.parse_args(argv)
    args.proxy_tree = args.proxy_tree.resolve()
    return args


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The held-streams options, shared with `python -m bench`."""
    parser.add_argument(
        "--held-streams", dest="held_streams", default="100,500,1000",
        help="comma-separated N, streams held at once (default 100,500,1000)",
    )  # fmt: skip
    parser.add_argument("--held-reps", dest="held_reps", type=int, default=2)
    parser.add_argument("--held-window", dest="window", type=float, default=5.0,
                        help="measured seconds per run")  # fmt: skip
    parser.add_argument("--held-ramp", dest="ramp", type=float, default=2.0)
    parser.add_argument("--held-warmup", dest="warmup", type=float, default=1.0)
    parser.add_argument("--held-chunks", dest="chunks", type=int, default=CHUNKS,
                        help=f"chunks per completion (default {CHUNKS})")  # fmt: skip


def run(args: argparse.Namespace, raw_machine: str, commit: str) -> dict[str, Any]:
    """Measure and return the held-streams results (also written to bench/out/held.json)."""
    if isinstance(args.held_streams, str):
        args.held_streams = sorted(int(n) for n in args.held_streams.split(",") if n.strip())
    raw: dict[str, Any] = {
        "machine": raw_machine, "proxy_commit": commit, "streams": args.held_streams,
        "reps": args.held_reps, "chunks": args.chunks, "delay": DELAY,
        "timing": {"ramp": args.ramp, "warmup": args.warmup, "window": args.window},
        "before": str(args.before or ""),
    }  # fmt: skip
    if args.before:
        raw["before_commit"] = measured_commit(Path(args.before))
    measure(args, raw)
    raw["load_average_end"] = list(os.getloadavg())
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "held.json").write_text(json.dumps(raw, indent=2))
    return raw


def main() -> None:
    args = parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # unwind: targets stopped
    raise_group_priority()
    raw = run(args, machine_line(), measured_commit(args.proxy_tree))
    text = held_report.render(raw)
    held_report.replace_section(ROOT / "bench" / "RESULTS.md", text)
    print(text)


if __name__ == "__main__":
    main()
