"""Before/after numbers per attack: `python -m tests.proxy.security_repro [attack...]`.

Each attack starts a real `python -m proxy serve` on loopback against the fake
upstream, attacks it with bounded loops, and prints one line of numbers (RSS,
seconds, statuses). Run it on two commits to compare; the tests in
test_security_round2.py assert the fixed behaviour.
"""

import contextlib
import os
import signal
import socket
import sys
import time
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from fakes.openai_upstream import start_fake_upstream
from tests.proxy.proxy_process import ProxyProcess, launch
from tests.support.net import seconds_until_closed
from tests.support.proxy import FAKE_KEY, LoopThread

MIB = 1024 * 1024


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100  # utime + stime, in ticks of 10 ms


def chat(url: str) -> int:
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    try:
        return httpx.post(url + "/v1/chat/completions", json=body, timeout=10).status_code
    except httpx.HTTPError:
        return 0


def slow_bodies(proxy: ProxyProcess) -> str:
    """Four connections declare a 16 MiB JSON body and send one byte."""
    before = rss_mib(proxy.process.pid)
    socks = []
    head = (
        "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {16 * MIB}\r\n\r\n{{"
    ).encode()
    for _ in range(4):
        sock = socket.create_connection(("127.0.0.1", proxy.port), timeout=5)
        sock.sendall(head)
        socks.append(sock)
    time.sleep(0.5)
    statuses = [chat(proxy.root_url) for _ in range(3)]
    after = rss_mib(proxy.process.pid)
    held = seconds_until_closed(socks[0], 90)
    for sock in socks:
        sock.close()
    return (
        f"slow-bodies: chat statuses while held {statuses}; RSS {before:.0f} -> {after:.0f} MiB; "
        f"attacker connection held {held:.1f} s"
    )


def _gzip_bomb(megabytes: int) -> bytes:
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    zeros = bytes(MIB)
    return b"".join(compressor.compress(zeros) for _ in range(megabytes)) + compressor.flush()


def gzip_bomb(proxy: ProxyProcess) -> str:
    """A gzip body (2 GiB inflated) sent to /healthz, which never reads it."""
    bomb = _gzip_bomb(2048)
    head = (
        "POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Encoding: gzip\r\nContent-Length: {len(bomb)}\r\n\r\n"
    ).encode()
    cpu = cpu_seconds(proxy.process.pid)
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=15) as sock:
        sock.sendall(head)
        began = time.monotonic()
        with contextlib.suppress(OSError):
            sock.sendall(bomb)
        health = time.monotonic()
        status = httpx.get(proxy.root_url + "/healthz", timeout=30).status_code
        answered = time.monotonic() - health
        seconds_until_closed(sock, 15)
    time.sleep(0.5)
    return (
        f"gzip-bomb: {len(bomb) / MIB:.1f} MB gzip to /healthz: proxy CPU "
        f"{cpu_seconds(proxy.process.pid) - cpu:.2f} s; a second /healthz {status} after "
        f"{answered:.2f} s (send took {health - began:.2f} s)"
    )


def oversize_body(proxy: ProxyProcess) -> str:
    """413 for a body over the cap, sent whole; then a second request on the connection."""
    big = b"x" * (16 * MIB + 1)
    head = (
        "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(big)}\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=3) as sock:
        sock.sendall(head)
        with contextlib.suppress(OSError):
            sock.sendall(big)
        first = sock.recv(65536)
        close = b"connection: close" in first.lower()
        began = time.monotonic()
        try:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            second = sock.recv(65536)
            outcome = "closed" if not second else second.split(b"\r\n", 1)[0].decode()
        except TimeoutError:
            outcome = "no answer"
        except OSError as exc:
            outcome = type(exc).__name__
    return (
        f"oversize-body: {first.split(b' ', 2)[1].decode()} with Connection: close={close}; "
        f"next request: {outcome} after {time.monotonic() - began:.2f} s"
    )


def idle_keepalive(proxy: ProxyProcess) -> str:
    """An idle keep-alive connection after a response: how long it stays open (cap 90 s)."""
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        sock.recv(65536)
        held = seconds_until_closed(sock, 90)
    return f"idle-keepalive: idle keep-alive connection closed after {held:.1f} s (cap 90)"


def trickle_uploads(proxy: ProxyProcess) -> str:
    """Against maxInFlight=2: two uploads trickling a byte a second; how long chat gets 503."""
    head = (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 100000\r\n\r\n"
    )
    socks = [socket.create_connection(("127.0.0.1", proxy.port), timeout=5) for _ in range(2)]
    for sock in socks:
        sock.sendall(head)
    began = time.monotonic()
    refused_until = 0.0
    while time.monotonic() - began < 75:
        for sock in socks:
            with contextlib.suppress(OSError):
                sock.sendall(b" ")
        if chat(proxy.root_url) == 503:
            refused_until = time.monotonic() - began
        elif refused_until:
            break
        time.sleep(0.5)
    for sock in socks:
        sock.close()
    return f"trickle-uploads: chat calls got 503 for {refused_until:.1f} s (cap 75)"


def busy_worker(proxy: ProxyProcess) -> str:
    """Two workers; one busy (SIGSTOP) for 5 s while /metrics scrapes arrive."""
    pids = proxy.lines[-1]["workerPids"]
    assert isinstance(pids, list)
    busy = min(int(pid) for pid in pids)
    os.kill(busy, signal.SIGSTOP)
    statuses: list[int] = []

    def scrape() -> int:
        try:
            return httpx.get(proxy.root_url + "/metrics", timeout=3).status_code
        except httpx.HTTPError:
            return 0

    began = time.monotonic()
    with ThreadPoolExecutor(max_workers=48) as pool:
        while time.monotonic() - began < 5:
            statuses += pool.map(lambda _: scrape(), range(96))
    with contextlib.suppress(ProcessLookupError):
        os.kill(busy, signal.SIGCONT)
    time.sleep(0.5)
    alive = Path(f"/proc/{busy}").exists() and "Z" not in Path(f"/proc/{busy}/stat").read_text()
    return (
        f"busy-worker: {len(statuses)} scrapes ({statuses.count(503)} x 503) while a worker was "
        f"busy 5 s; the busy worker {'alive' if alive else 'KILLED'}"
    )


ATTACKS: dict[str, Callable[[ProxyProcess], str]] = {
    "busy-worker": busy_worker,
    "trickle-uploads": trickle_uploads,
    "slow-bodies": slow_bodies,
    "gzip-bomb": gzip_bomb,
    "idle-keepalive": idle_keepalive,
    "oversize-body": oversize_body,
}


def main() -> None:
    chosen = sys.argv[1:] or list(ATTACKS)
    loop = LoopThread("fake-upstream")
    runner, _, port = loop.run(start_fake_upstream())
    key_dir = Path("/tmp/llm-proxy-security-repro")
    key_dir.mkdir(exist_ok=True)
    (key_dir / "apiKey").write_text(FAKE_KEY)
    env = {
        "LLM_PROXY_HOST": "127.0.0.1",
        "LLM_PROXY_PORT": "0",
        "LLM_PROXY_UPSTREAM": f"http://127.0.0.1:{port}/v1",
        "LLM_PROXY_KEY_FILE": str(key_dir / "apiKey"),
    }
    try:
        for name in chosen:
            extra = {"LLM_PROXY_MAX_IN_FLIGHT": "2"} if name == "trickle-uploads" else {}
            if name == "busy-worker":
                extra = {"LLM_PROXY_WORKERS": "2"}
            proxy = launch({**env, **extra}, ["serve"])
            try:
                print(ATTACKS[name](proxy), flush=True)
            finally:
                proxy.process.terminate()
                proxy.process.wait(timeout=30)
    finally:
        loop.run(runner.cleanup())


if __name__ == "__main__":
    main()
