"""`python -m bench.client_paths [--calls N] [--reps R]`: aiohttp's per-call client cost.

A finished experiment (see RESULTS.md, "Finished experiments"). The proxy sends each
upstream request with `ClientSession.request`; most of what that costs per call is
the session's and `ClientRequest`'s general machinery (URL and header merging, auto
headers, request info, a task for the body on Python 3.11). This prices that part:
bench.upstream on CPU 0, and on CPU 1, alternately, N sequential non-stream chat
completions sent

- `session`: as the proxy sends them (ClientSession.request, body read, released);
- `lean`: on a connection from the same connector, the head serialized by aiohttp's
  own serializer and written with the body in one write, the answer read by aiohttp's
  ClientResponse: no ClientSession._request, no ClientRequest per call.

CPU per call is this process's (user + system) over the calls, the median over reps.
"""

import argparse
import asyncio
import json
import os
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import uvloop
from aiohttp.client_reqrep import ClientRequest, ClientResponse, RequestInfo
from aiohttp.helpers import TimerNoop
from aiohttp.http_writer import _serialize_headers
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from bench.targets import LOAD_CPU, PROXY_CPU, spawn_printing_port

BODY = json.dumps(
    {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "ping"}]}
).encode()
HEADERS = {
    "Authorization": "Bearer sk-bench-dummy",
    "Content-Type": "application/json",
    "Accept": "application/json",
    "User-Agent": "OpenAI/Python 1.0",
}
WARMUP_CALLS = 200


class _SentWriter:
    """What ClientResponse reads of the request's writer once the request is sent."""

    output_size = 0


def session_path(session: aiohttp.ClientSession, url: str) -> Callable[[], Awaitable[None]]:
    async def call() -> None:
        response = await session.request(
            "POST", url, headers=HEADERS, data=bytearray(BODY), allow_redirects=False
        )
        await response.read()
        response.release()

    return call


def lean_path(session: aiohttp.ClientSession, url: URL) -> Callable[[], Awaitable[None]]:
    loop = asyncio.get_running_loop()
    template = ClientRequest("POST", url, loop=loop, ssl=True)  # the connection's key only
    connector = session.connector
    assert connector is not None
    assert url.raw_host is not None

    async def call() -> None:
        connection = await connector.connect(template, traces=[], timeout=session.timeout)
        protocol, transport = connection.protocol, connection.transport
        assert protocol is not None
        assert transport is not None
        protocol.set_response_params(read_timeout=session.timeout.sock_read)
        headers = CIMultiDict(HEADERS)
        headers["Host"] = f"{url.raw_host}:{url.port}"
        headers["Content-Length"] = str(len(BODY))
        head = _serialize_headers(f"POST {url.raw_path_qs} HTTP/1.1", headers)
        transport.write(head + BODY)
        protocol.start_timeout()
        info = RequestInfo(url, "POST", CIMultiDictProxy(headers), url)
        response = ClientResponse(
            "POST", url, writer=None, continue100=None, timer=TimerNoop(),
            request_info=info, traces=[], loop=loop, session=session,
            stream_writer=_SentWriter(),  # type: ignore[arg-type]
        )  # fmt: skip
        await response.start(connection)
        await response.read()
        response.release()

    return call


async def cpu_per_call(call: Callable[[], Awaitable[None]], calls: int) -> float:
    for _ in range(WARMUP_CALLS):
        await call()
    began = time.process_time()
    for _ in range(calls):
        await call()
    return (time.process_time() - began) / calls * 1e6


async def measure(port: int, calls: int, reps: int) -> dict[str, list[float]]:
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=100),
        timeout=aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=60),
        cookie_jar=aiohttp.DummyCookieJar(),
    )
    paths = {"session": session_path(session, url), "lean": lean_path(session, URL(url))}
    results: dict[str, list[float]] = {name: [] for name in paths}
    try:
        for rep in range(reps):
            names = list(paths) if rep % 2 == 0 else list(reversed(paths))
            for name in names:
                results[name].append(await cpu_per_call(paths[name], calls))
    finally:
        await session.close()
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.client_paths", description=__doc__)
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--reps", type=int, default=6)
    args = parser.parse_args(argv)
    upstream, port = spawn_printing_port(["-m", "bench.upstream"], LOAD_CPU)
    try:
        os.sched_setaffinity(0, {PROXY_CPU})
        results = uvloop.run(measure(port, args.calls, args.reps))
    finally:
        upstream.kill()
        upstream.wait()
    medians: dict[str, Any] = {name: statistics.median(v) for name, v in results.items()}
    for name, values in results.items():
        reps = [round(value) for value in values]
        print(f"{name:8} median {medians[name]:6.1f} µs CPU/call  reps {reps}")
    saved = medians["session"] - medians["lean"]
    print(f"lean saves {saved:.1f} µs per call ({saved / medians['session']:.0%})")


if __name__ == "__main__":
    main()
