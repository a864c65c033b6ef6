"""Load generator, run as its own process: `python -m bench.loadgen JSON_SPEC`.

Prints one JSON line of results. Spec keys: url, mode (chat|stream|streams-held),
concurrency, duration (s), warmup (s), count (stream mode), behaviour.
"""

import asyncio
import json
import sys
import time

import aiohttp
import uvloop

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "ping"}]}


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))
    return ordered[index]


async def chat_load(spec: dict[str, object]) -> dict[str, object]:
    """Closed loop: `concurrency` workers, each sending the next request on reply."""
    url = f"{spec['url']}/chat/completions"
    concurrency = int(spec["concurrency"])  # type: ignore[call-overload]
    duration = float(spec["duration"])  # type: ignore[arg-type]
    warmup = float(spec.get("warmup", 0.5))  # type: ignore[arg-type]
    body = json.dumps(CHAT).encode()
    headers = {"Content-Type": "application/json", "Authorization": "Bearer sk-bench-dummy"}
    latencies: list[float] = []
    errors = 0
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        began = time.perf_counter()
        measure_from = began + warmup
        stop_at = measure_from + duration

        async def worker() -> None:
            nonlocal errors
            while (now := time.perf_counter()) < stop_at:
                try:
                    async with session.post(url, data=body, headers=headers) as response:
                        await response.read()
                        ok = response.status == 200
                except aiohttp.ClientError:
                    ok = False
                if now >= measure_from:
                    if ok:
                        latencies.append(time.perf_counter() - now)
                    else:
                        errors += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return {
        "requests": len(latencies),
        "errors": errors,
        "rate": len(latencies) / duration,
        "p50_ms": percentile(latencies, 0.5) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
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
