"""The bench's bare passthroughs: bench.passthrough's rows, and bench.passthrough_stacks'
hand-written parts (the raw httptools server and client).

A misframed response or a connection returned to the pool mid-body would skew the
"Server stacks" numbers (or fail requests the load generator counts as errors).
"""

import asyncio
import json

import aiohttp
import pytest
from aiohttp import web

from bench import passthrough
from bench import passthrough_stacks as stacks
from bench.upstream import UpstreamProtocol


@pytest.mark.parametrize("client", ["raw", "aiohttp"])
async def test_httptools_passthrough_forwards_and_streams_on_one_connection(
    client: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    loop = asyncio.get_running_loop()
    upstream = await loop.create_server(UpstreamProtocol, "127.0.0.1", 0)
    upstream_port = upstream.sockets[0].getsockname()[1]
    monkeypatch.setattr(stacks, "UPSTREAM", f"http://127.0.0.1:{upstream_port}/v1")
    monkeypatch.setattr(stacks, "CLIENT", client)
    monkeypatch.setattr(stacks, "_idle", [])
    monkeypatch.setattr(stacks, "_session", None)
    server = await loop.create_server(stacks.HttptoolsProtocol, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/v1/chat/completions"
    auth = {"Authorization": "Bearer sk-test", "x-fake-behaviour": "chunks:3"}
    connector = aiohttp.TCPConnector(limit=1)  # every request on the same connection
    try:
        async with aiohttp.ClientSession(connector=connector) as http:
            for _ in range(2):
                async with http.post(url, json={"model": "m"}, headers=auth) as response:
                    assert response.status == 200
                    assert (await response.json())["usage"]["completion_tokens"] == 1
                body = {"model": "m", "stream": True, "stream_options": {"include_usage": True}}
                async with http.post(url, json=body, headers=auth) as response:
                    assert response.status == 200
                    assert response.content_type == "text/event-stream"
                    events = [line async for line in response.content if line.strip()]
                assert events[-1] == b"data: [DONE]\n"
                assert json.loads(events[-2][6:])["usage"]["completion_tokens"] == 3
            async with http.post(url, json={}) as response:
                assert response.status == 401  # no key: the upstream's answer, forwarded
    finally:
        server.close()
        upstream.close()
        if stacks._session is not None:
            await stacks._session.close()
        for connection in stacks._idle:
            if connection.transport is not None:
                connection.transport.close()


@pytest.mark.parametrize("client", ["aiohttp", "pyreqwest"])
async def test_bare_passthrough_forwards_and_streams_each_event_as_it_comes(client: str) -> None:
    """bench.passthrough's rows: pyreqwest's default 64 KiB read-ahead would hold a whole
    stream back; the first event must reach the client long before the last."""
    loop = asyncio.get_running_loop()
    upstream = await loop.create_server(UpstreamProtocol, "127.0.0.1", 0)
    upstream_port = upstream.sockets[0].getsockname()[1]
    make = passthrough.aiohttp_handler if client == "aiohttp" else passthrough.pyreqwest_handler
    handle, close = make(f"http://127.0.0.1:{upstream_port}/v1")
    runner = web.ServerRunner(web.Server(handle), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}/v1/chat/completions"
    auth = {"Authorization": "Bearer sk-test", "x-fake-behaviour": "chunks:4,chunk-delay:0.1"}
    try:
        async with aiohttp.ClientSession() as http:
            async with http.post(url, json={"model": "m"}, headers=auth) as response:
                assert response.status == 200
                assert (await response.json())["usage"]["completion_tokens"] == 1
            body = {"model": "m", "stream": True, "stream_options": {"include_usage": True}}
            async with http.post(url, json=body, headers=auth) as response:
                assert response.content_type == "text/event-stream"
                arrivals = [(loop.time(), line) async for line in response.content if line.strip()]
            async with http.post(url, json={}) as response:
                assert response.status == 401  # no key: the upstream's answer, forwarded
    finally:
        await runner.cleanup()
        await close()
        upstream.close()
    assert arrivals[-1][1] == b"data: [DONE]\n"
    assert json.loads(arrivals[-2][1][6:])["usage"]["completion_tokens"] == 4
    assert arrivals[-1][0] - arrivals[0][0] >= 0.3  # 4 events 0.1 s apart, not one burst
