"""Held-streams load, run as its own process: `python -m bench.heldload JSON_SPEC`.

N connections each hold one streamed chat completion open at a time (the next starts
on the same connection as soon as one ends), the first of each started spread over
`ramp` seconds so their chunks interleave as real users' do. The upstream
(bench/upstream.py, `stamp:1`) stamps every content event with its index and send
time; this client parses each response with httptools (C, so its own cost per chunk
stays small beside the target's) and takes arrival minus send per event.

Over the measured window it counts the events that arrived, their latency
percentiles, the events the upstream sent (its GET /__stats), CPU of the named
process groups and of both cores, and the peak summed VmRSS of the target's
processes; over the whole run, the failures: responses other than 200 (refused),
streams cut before their end, events lost (a gap in the indices) or out of order.
Prints one JSON line.
"""

import asyncio
import contextlib
import json
import re
import sys
import time
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit

import uvloop

from bench.loadgen import cpu_snapshot, percentile
from bench.rawclient import build_post

STAMP = re.compile(rb'"seq":(\d+),"sent":(\d+),')
KEEP = 64  # bytes kept after a scan without a match: room for a stamp split across reads


class Tally:
    """What every stream of the run adds to."""

    def __init__(self, window: tuple[int, int], chunks: int) -> None:
        self.start_ns, self.end_ns = window
        self.chunks = chunks
        self.latencies_us: list[int] = []  # events that arrived inside the window
        self.completions = 0
        self.refused = 0  # a status other than 200 (503 from a full proxy)
        self.cut = 0  # connection lost or response ended before the last event
        self.lost = 0  # events missing: a gap in the indices, or fewer than sent
        self.reordered = 0


class HeldStream(asyncio.Protocol):
    """One connection, one stream at a time, parsed with httptools' response parser."""

    def __init__(self, tally: Tally, request: bytes, stop_ns: int) -> None:
        import httptools  # bench-only (requirements-bench.txt)

        self.tally, self.request, self.stop_ns = tally, request, stop_ns
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.now = 0
        self.next_seq = 0
        self.status = 0
        self.in_message = False
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.send()

    def send(self) -> None:
        assert self.transport is not None
        self.buffer.clear()
        self.next_seq = 0
        self.in_message = True
        self.transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        self.now = time.monotonic_ns()
        try:
            self.parser.feed_data(data)
        except Exception:  # httptools.HttpParserError: a broken response counts as cut
            self.tally.cut += 1
            self.in_message = False
            if self.transport is not None:
                self.transport.close()

    # httptools callbacks
    def on_status(self, status: bytes) -> None:
        self.status = self.parser.get_status_code()

    def on_body(self, body: bytes) -> None:
        if self.status != 200:
            return
        buffer = self.buffer
        buffer += body
        tally, end = self.tally, 0
        for match in STAMP.finditer(buffer):
            seq, sent = int(match[1]), int(match[2])
            if seq != self.next_seq:
                if seq < self.next_seq:
                    tally.reordered += 1
                else:
                    tally.lost += seq - self.next_seq
            self.next_seq = max(self.next_seq, seq + 1)
            if tally.start_ns <= self.now < tally.end_ns:
                tally.latencies_us.append((self.now - sent) // 1000)
            end = match.end()
        del buffer[: max(end, len(buffer) - KEEP)]

    def on_message_complete(self) -> None:
        tally = self.tally
        self.in_message = False
        if self.status != 200:
            tally.refused += 1
        else:
            tally.completions += 1
            if self.next_seq < tally.chunks:
                tally.lost += tally.chunks - self.next_seq
        if time.monotonic_ns() < self.stop_ns and self.parser.should_keep_alive():
            self.status = 0
            self.send()
        elif self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.in_message and time.monotonic_ns() < self.stop_ns:
            self.tally.cut += 1
        if not self.closed.done():
            self.closed.set_result(None)


async def upstream_sent(host: str, port: int) -> int:
    """Stamped events the bench upstream has written so far (GET /__stats)."""
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(b"GET /__stats HTTP/1.1\r\nHost: x\r\n\r\n")
    head = await reader.readuntil(b"\r\n\r\n")
    length = int(re.search(rb"Content-Length: (\d+)", head)[1])  # type: ignore[index]
    body = await reader.readexactly(length)
    writer.close()
    return int(json.loads(body)["sent"])


def rss_kib(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total


async def held_load(spec: dict[str, Any]) -> dict[str, Any]:
    n, chunks, delay = int(spec["streams"]), int(spec["chunks"]), float(spec["delay"])
    ramp, warmup, window = float(spec["ramp"]), float(spec["warmup"]), float(spec["window"])
    groups: dict[str, list[int]] = dict(spec.get("cpu", {}))
    rss_pids: list[int] = list(spec.get("rss_pids", []))
    stats = urlsplit(str(spec["upstream"]))
    body = json.dumps({
        "model": "gpt-4o-mini", "messages": [{"role": "user", "content": "ping"}],
        "stream": True, "stream_options": {"include_usage": True},
    }).encode()  # fmt: skip
    headers = {"Content-Type": "application/json", "Authorization": "Bearer sk-bench-dummy",
               "x-fake-behaviour": f"chunks:{chunks},chunk-delay:{delay},stamp:1"}  # fmt: skip
    host, port, request = build_post(f"{spec['url']}/chat/completions", body, headers)
    loop = asyncio.get_running_loop()
    began = time.monotonic_ns()
    window_ns = (began + int((ramp + warmup) * 1e9), began + int((ramp + warmup + window) * 1e9))
    tally = Tally(window_ns, chunks)
    streams: list[HeldStream] = []
    connect_errors = 0

    async def open_one(i: int) -> None:
        nonlocal connect_errors
        await asyncio.sleep(ramp * i / n)
        try:
            _, stream = await loop.create_connection(
                lambda: HeldStream(tally, request, window_ns[1]), host, port
            )
            streams.append(stream)
        except OSError:
            connect_errors += 1

    opening = asyncio.gather(*(open_one(i) for i in range(n)))
    await asyncio.sleep((window_ns[0] - time.monotonic_ns()) / 1e9)
    sent0, snap0 = await upstream_sent(stats.hostname or "", stats.port or 80), cpu_snapshot(groups)
    rss_peak = 0
    while (left := (window_ns[1] - time.monotonic_ns()) / 1e9) > 0:
        rss_peak = max(rss_peak, rss_kib(rss_pids))
        await asyncio.sleep(min(0.5, left))
    sent1, snap1 = await upstream_sent(stats.hostname or "", stats.port or 80), cpu_snapshot(groups)
    await opening
    held_at_end = sum(1 for s in streams if s.in_message)
    for stream in streams:
        if stream.transport is not None:
            stream.transport.close()
    latencies: list[float] = [float(us) for us in tally.latencies_us]
    return {
        "streams": n, "held_at_end": held_at_end, "window_s": window,
        "received": len(latencies), "sent": sent1 - sent0,
        "p50_ms": percentile(latencies, 0.5) / 1000, "p99_ms": percentile(latencies, 0.99) / 1000,
        "p999_ms": percentile(latencies, 0.999) / 1000,
        "max_ms": (max(latencies) if latencies else float("nan")) / 1000,
        "completions": tally.completions, "refused": tally.refused, "cut": tally.cut,
        "lost": tally.lost, "reordered": tally.reordered, "connect_errors": connect_errors,
        "rss_peak_kib": rss_peak,
        "cpu_s": {name: snap1[name] - snap0[name] for name in snap0},
    }  # fmt: skip


def main() -> None:
    spec = json.loads(sys.argv[1])
    print(json.dumps(uvloop.run(held_load(spec))), flush=True)


if __name__ == "__main__":
    main()
