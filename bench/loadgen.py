"""Load generator, run as its own process: `python -m bench.loadgen JSON_SPEC`.

Prints one JSON line of results. Spec keys: url, mode (chat|stream), concurrency,
duration (s), warmup (s), cpu (chat: name -> pids whose CPU to read over the window),
count and behaviour (stream mode), token_file (chat: a file whose bearer token is sent
instead of a dummy key, for a proxy that requires identity; never in argv). Chat load
uses the lean client in bench.rawclient; streams use aiohttp's client, whose reads per
response are what a real client sees.
"""

import asyncio
import json
import os
import sys
import time
from pathlib import Path

import aiohttp
import uvloop

from bench.cpu import cpu_busy_seconds, tree_cpu_seconds
from bench.rawclient import build_post, connect

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "ping"}]}


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))
    return ordered[index]


def bearer(spec: dict[str, object]) -> str:
    """The token to send: the spec's token file, or a dummy key the proxy swaps."""
    path = spec.get("token_file")
    return Path(str(path)).read_text().strip() if path else "sk-bench-dummy"


def cpu_snapshot(groups: dict[str, list[int]]) -> dict[str, float]:
    """CPU seconds so far of each named process group, and of this load generator."""
    snap = {name: tree_cpu_seconds(pids) for name, pids in groups.items()}
    snap["loadgen"] = time.process_time()
    for cpu in range(min(os.cpu_count() or 1, 2)):
        snap[f"cpu{cpu} busy"] = cpu_busy_seconds(cpu)
    return snap


async def chat_load(spec: dict[str, object]) -> dict[str, object]:
    """Closed loop: `concurrency` connections, each sending the next request on reply.

    CPU of the process groups in spec["cpu"] (name -> pids) is read from /proc at
    the start and end of the measured window, beside the requests counted in it.
    """
    concurrency = int(spec["concurrency"])  # type: ignore[call-overload]
    duration = float(spec["duration"])  # type: ignore[arg-type]
    warmup = float(spec.get("warmup", 0.5))  # type: ignore[arg-type]
    groups: dict[str, list[int]] = dict(spec.get("cpu", {}))  # type: ignore[call-overload]
    token = bearer(spec)
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
    host, port, raw = build_post(
        f"{spec['url']}/chat/completions", json.dumps(CHAT).encode(), headers
    )
    latencies: list[float] = []
    errors = 0
    began = time.perf_counter()
    measure_from = began + warmup
    stop_at = measure_from + duration
    snapshots: list[dict[str, float]] = []

    async def worker() -> None:
        nonlocal errors
        connection = await connect(host, port)
        while (now := time.perf_counter()) < stop_at:
            status = await connection.request(raw)
            if now >= measure_from:
                if status == 200:
                    latencies.append(time.perf_counter() - now)
                else:
                    errors += 1
            if connection.lost or connection.reader.close:
                if connection.transport is not None:
                    connection.transport.close()
                connection = await connect(host, port)
        if connection.transport is not None:
            connection.transport.close()

    async def sample() -> None:
        await asyncio.sleep(max(0.0, measure_from - time.perf_counter()))
        snapshots.append(cpu_snapshot(groups))
        await asyncio.sleep(max(0.0, stop_at - time.perf_counter()))
        snapshots.append(cpu_snapshot(groups))

    await asyncio.gather(sample(), *(worker() for _ in range(concurrency)))
    return {
        "requests": len(latencies),
        "errors": errors,
        "rate": len(latencies) / duration,
        "p50_ms": percentile(latencies, 0.5) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
        "cpu_s": {name: snapshots[1][name] - snapshots[0][name] for name in snapshots[0]},
        "window_s": duration,
    }


async def one_stream(
    session: aiohttp.ClientSession, url: str, headers: dict[str, str], body: bytes
) -> tuple[float, int, bool]:
    began = time.perf_counter()
    ttfb = float("nan")
    reads = 0
    async with session.post(url, data=body, headers=headers) as response:
        while await response.content.readany():
            if reads == 0:
                ttfb = time.perf_counter() - began
            reads += 1
        return ttfb, reads, response.status == 200


async def stream_load(spec: dict[str, object]) -> dict[str, object]:
    """`count` streams, `concurrency` at a time: time to first byte and reads per stream."""
    url = f"{spec['url']}/chat/completions"
    concurrency = int(spec["concurrency"])  # type: ignore[call-overload]
    count = int(spec["count"])  # type: ignore[call-overload]
    body = json.dumps({**CHAT, "stream": True}).encode()
    headers = {
        "Content-Type": "application/json",
        "Authorization": "Bearer sk-bench-dummy",  # the fake wants one; the proxy swaps it
        "x-fake-behaviour": str(spec.get("behaviour", "chunks:20,chunk-delay:0.002")),
    }
    results: list[tuple[float, int, bool]] = []
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:
        for _ in range(2):  # warm the connections
            await one_stream(session, url, headers, body)
        remaining = count

        async def worker() -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                results.append(await one_stream(session, url, headers, body))

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    ttfbs = [r[0] for r in results]
    reads = sorted(r[1] for r in results)
    return {
        "streams": len(results),
        "errors": sum(1 for r in results if not r[2]),
        "ttfb_p50_ms": percentile(ttfbs, 0.5) * 1000,
        "ttfb_p99_ms": percentile(ttfbs, 0.99) * 1000,
        "reads_median": reads[len(reads) // 2],
        "reads_min": reads[0],
    }


def main() -> None:
    spec = json.loads(sys.argv[1])
    run = chat_load if spec["mode"] == "chat" else stream_load
    print(json.dumps(uvloop.run(run(spec))), flush=True)


if __name__ == "__main__":
    main()
