"""Server stacks: bare passthroughs on granian, uvicorn, raw httptools, other clients, vs aiohttp.

`python -m bench.stacks [--reps N] [--duration S] [--streams N]` runs only these
rows (no proxy) at c=16 and c=64 plus the stream check, reps interleaved with the
order rotated, CPU per request from /proc; prints the "Server stacks" section of
RESULTS.md (also in bench/out/stacks.md; a full run keeps the one RESULTS.md has) and
keeps raw numbers in bench/out/stacks.json. `python -m bench --stacks`
adds the same rows to the full run.
"""

import argparse
import json
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import report
from bench.machine import machine_line
from bench.targets import (
    LOAD_CPU,
    PROXY_CPU,
    Target,
    raise_group_priority,
    spawn_printing_port,
    stop_all,
    wait_ready,
)

KINDS = (
    "granian-rsgi", "granian-asgi", "uvicorn", "httptools",
    "granian-rsgi+pyreqwest", "httptools+pyreqwest", "granian-rsgi+raw", "httptools+raw",
)  # fmt: skip
# Also runnable with --kinds, not in the default set: "socketify" (pip install socketify):
# 0.0.31 measured 1.8x the aiohttp passthrough's CPU, then died of a cffi use-after-free.
PREFIX = "stack "


def start_stack(kind: str, upstream: str) -> Target:
    """One passthrough of bench.passthrough_stacks, ready, its whole process tree listed."""
    process, port = spawn_printing_port(
        ["-m", "bench.passthrough_stacks", kind, upstream], PROXY_CPU
    )
    target = Target(PREFIX + kind, f"http://127.0.0.1:{port}/v1", process, concurrencies=(16, 64))
    try:
        wait_ready(f"http://127.0.0.1:{port}/", process)
        target.settle()
        deadline = time.monotonic() + 5
        while len(target.pids) < (2 if kind.startswith("granian") else 1):
            if time.monotonic() > deadline:  # granian's worker process should be up by now
                raise TimeoutError(f"{kind}: worker process not seen")
            time.sleep(0.1)
            target.settle()
    except BaseException:
        target.stop()
        raise
    return target


def start_stacks(upstream: str, kinds: list[str], notes: dict[str, str]) -> list[Target]:
    started = []
    for kind in kinds:
        try:
            started.append(start_stack(kind, upstream))
        except (RuntimeError, TimeoutError, ValueError) as exc:
            notes[kind] = f"did not start: {exc}"
            print(f"skipping stack {kind}: {exc}", flush=True)
    return started


def main() -> None:
    from bench.__main__ import OUT, measure
    from bench.nginx import start_nginx

    parser = argparse.ArgumentParser(prog="python -m bench.stacks", description=__doc__)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--duration", type=float, default=2.0)
    parser.add_argument("--streams", type=int, default=60)
    parser.add_argument("--kinds", default=",".join(KINDS))
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    raise_group_priority()
    raw: dict[str, Any] = {
        "args": vars(args), "machine": machine_line(), "stack_notes": {},
        "started": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }  # fmt: skip
    work = Path(tempfile.mkdtemp(prefix="llm-proxy-stacks-"))
    upstream_process, upstream_port = spawn_printing_port(["-m", "bench.upstream"], LOAD_CPU)
    upstream = f"http://127.0.0.1:{upstream_port}/v1"
    targets: list[Target] = []
    try:
        process, port = spawn_printing_port(
            ["-m", "bench.passthrough", "aiohttp", upstream], PROXY_CPU
        )
        bare = Target(report.BARE, f"http://127.0.0.1:{port}/v1", process, concurrencies=(16, 64))
        bare.settle()
        targets.append(bare)
        targets.append(start_nginx(upstream_port, work, "sk-unused", report.NGINX))
        targets[-1].concurrencies = (16, 64)
        targets += start_stacks(upstream, args.kinds.split(","), raw["stack_notes"])
        raw["names"] = [t.name for t in targets]
        measure(args, targets, [upstream_process.pid], raw)
        raw["loadavg"] = Path("/proc/loadavg").read_text().split()[:3]
    finally:
        stop_all(targets, upstream_process, work)
    (OUT / "stacks.json").write_text(json.dumps(raw, indent=2))
    section = "\n".join(report.stacks_section(report.Numbers(raw)))
    (OUT / "stacks.md").write_text(section + "\n")  # to paste into RESULTS.md
    print(section)


if __name__ == "__main__":
    try:
        main()
    except subprocess.CalledProcessError as exc:
        raise SystemExit(f"load generator failed: {exc.stderr}") from exc
