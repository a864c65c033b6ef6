"""`python -m bench.gc_pauses [--streams N]`: the cyclic collector's cost with N streams held.

The proxy runs in this process (pinned to CPU 1 when there are two) with its collector
left at CPython's defaults or settled as `python -m proxy serve` does
(proxy.gc_policy.settle_gc), alternately; bench.upstream and bench.heldload run on
CPU 0. `gc.callbacks` times every collection over the run; the load's own numbers
(chunk latency) are printed beside them. One JSON line per policy and rep.
"""

import argparse
import asyncio
import gc
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import uvloop

from bench.targets import LOAD_CPU, PROXY_CPU, ROOT, pinned, spawn_printing_port
from proxy.gc_policy import settle_gc
from proxy.server import start
from proxy.settings import Settings


class Pauses:
    """Every collection's generation and duration (ms), from gc.callbacks."""

    def __init__(self) -> None:
        self.began = 0.0
        self.by_generation: dict[int, list[float]] = {0: [], 1: [], 2: []}

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self.began = time.perf_counter()
        else:
            elapsed = (time.perf_counter() - self.began) * 1000
            self.by_generation[info["generation"]].append(elapsed)


async def one_run(policy: str, streams: int, upstream: str, key: Path) -> dict[str, Any]:
    settings = Settings(
        host="127.0.0.1", port=0, upstream=upstream, key_file=key, max_in_flight=4096
    )
    running = await start(settings, io.StringIO())
    if policy == "settled":
        settle_gc()
    pauses = Pauses()
    gc.callbacks.append(pauses)
    spec = {
        "url": running.base_url, "upstream": upstream, "streams": streams, "chunks": 50,
        "delay": 0.04, "ramp": 2.0, "warmup": 1.0, "window": 4.0, "cpu": {}, "rss_pids": [],
    }  # fmt: skip
    try:
        load = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.heldload", json.dumps(spec), cwd=ROOT,
            stdout=subprocess.PIPE, preexec_fn=pinned(LOAD_CPU),
        )  # fmt: skip
        out, _ = await load.communicate()
    finally:
        gc.callbacks.remove(pauses)
        await running.stop()
        gc.unfreeze()
        gc.set_threshold(*DEFAULT_THRESHOLDS)
    result = json.loads(out)
    every = [ms for generation in pauses.by_generation.values() for ms in generation]
    return {
        "policy": policy,
        "streams": streams,
        "collections": {str(g): len(v) for g, v in pauses.by_generation.items()},
        "gc_ms_total": round(sum(every), 1),
        "gc_ms_longest": round(max(every, default=0.0), 1),
        "chunk_p50_ms": result["p50_ms"],
        "chunk_p99_ms": result["p99_ms"],
        "load_average": os.getloadavg()[0],
    }


DEFAULT_THRESHOLDS = gc.get_threshold()


async def main(args: argparse.Namespace) -> None:
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) >= 2:
        os.sched_setaffinity(0, {PROXY_CPU})
    work = Path(tempfile.mkdtemp(prefix="llm-proxy-gc-"))
    key = work / "apiKey"
    key.write_text("sk-bench-FAKEKEY-gc-aaaaaaaaaaaaaaaa\n")
    process, port = spawn_printing_port(["-m", "bench.upstream"], LOAD_CPU)
    upstream = f"http://127.0.0.1:{port}/v1"
    totals: dict[str, list[float]] = {"default": [], "settled": []}
    try:
        for rep in range(args.reps):
            order = ["default", "settled"] if rep % 2 == 0 else ["settled", "default"]
            for policy in order:
                line = await one_run(policy, args.streams, upstream, key)
                totals[policy].append(line["gc_ms_total"])
                print(json.dumps(line), flush=True)
    finally:
        process.terminate()
        process.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)
    for policy, values in totals.items():
        print(f"{policy}: collector time per run, median {statistics.median(values):.0f} ms")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.gc_pauses", description=__doc__)
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--reps", type=int, default=2)
    uvloop.run(main(parser.parse_args()))
