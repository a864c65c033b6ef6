"""The event-stream relay over TLS, as against the real (HTTPS) upstream.

The relay swaps the protocol of the upstream connection's transport; over TLS that
transport is the SSL layer's (asyncio's sslproto, or uvloop's), so this runs the
relay (proxy.relay.relay_body) between a TLS aiohttp upstream on loopback, with a
throwaway certificate made by the openssl CLI (installed by the project's script when
missing), and an aiohttp server, on both loops.
"""

import asyncio
import json
import ssl
import subprocess
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import uvloop
from aiohttp import web

from proxy.observability import CallRecord
from tests.support.relay import relay_handler

EVENTS = 20
RUNNERS: dict[str, Callable[[Coroutine[Any, Any, Any]], Any]] = {
    "asyncio": asyncio.run,
    "uvloop": uvloop.run,
}


ROOT = Path(__file__).resolve().parents[2]


def certificate(tmp_path: Path) -> tuple[Path, Path]:
    subprocess.run([str(ROOT / "scripts/ensure-debian-packages.sh"), "openssl"], check=True)
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return cert, key


async def scenario(cert: Path, key: Path) -> tuple[list[tuple[float, bytes]], list[Any], set[int]]:
    loop = asyncio.get_running_loop()
    ports: set[int] = set()

    async def upstream(request: web.Request) -> web.StreamResponse:
        assert request.transport is not None
        ports.add(request.transport.get_extra_info("peername")[1])
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for i in range(EVENTS):
            await response.write(b'data: {"i":%d}\n\n' % i)
            await asyncio.sleep(0.01)
        usage = {"usage": {"prompt_tokens": 11, "completion_tokens": EVENTS}}
        await response.write(b"data: " + json.dumps(usage).encode() + b"\n\ndata: [DONE]\n\n")
        return response

    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)
    app = web.Application()
    app.router.add_get("/v1/stream", upstream)
    up_runner = web.AppRunner(app)
    await up_runner.setup()
    await web.TCPSite(up_runner, "127.0.0.1", 0, ssl_context=server_tls).start()
    up_url = f"https://127.0.0.1:{up_runner.addresses[0][1]}/v1/stream"

    client_tls = ssl.create_default_context(cafile=str(cert))
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=client_tls))
    calls: list[CallRecord] = []
    relay = relay_handler(lambda: session.get(up_url), calls)

    runner = web.ServerRunner(web.Server(relay))
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}/"
    arrivals: list[tuple[float, bytes]] = []
    try:
        async with aiohttp.ClientSession() as client:
            for _ in range(2):  # the second stream reuses the TLS connection the first left
                async with client.get(url) as response:
                    async for line in response.content:
                        if line.strip():
                            arrivals.append((loop.time(), line))
    finally:
        await session.close()
        await runner.cleanup()
        await up_runner.cleanup()
    return arrivals, calls, ports


@pytest.mark.parametrize("loop", sorted(RUNNERS))
def test_a_tls_upstream_stream_is_relayed_event_by_event_and_its_connection_reused(
    tmp_path: Path, loop: str
) -> None:
    cert, key = certificate(tmp_path)
    arrivals, calls, ports = RUNNERS[loop](scenario(cert, key))
    lines = [line for _, line in arrivals]
    one_stream = [b'data: {"i":%d}\n' % i for i in range(EVENTS)]
    assert [line for line in lines if b'"i"' in line] == one_stream * 2
    assert lines.count(b"data: [DONE]\n") == 2
    first, last = arrivals[0][0], arrivals[EVENTS - 1][0]
    assert last - first >= 0.15  # 20 events 10 ms apart arrived spread out, not in one burst
    assert [(c.completion_tokens, c.error) for c in calls] == [(EVENTS, None)] * 2
    assert len(ports) == 1  # both upstream requests on one pooled TLS connection
