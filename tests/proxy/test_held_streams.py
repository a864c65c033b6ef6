"""A proxy at its default settings holds a thousand streams at once, none refused.

The default maxInFlight is sized for held streams (proxy/settings.py, measured in
bench/RESULTS.md); at the old default of 256, 744 of these would have had a 503.
"""

import asyncio
import json

import aiohttp
import pytest

from tests.support.proxy import ProxyHandle, metric

STREAMS = 1000
CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "stream": True}


@pytest.mark.timeout(120)
async def test_default_settings_hold_a_thousand_streams_at_once(proxy: ProxyHandle) -> None:
    url = proxy.base_url + "/chat/completions"
    headers = {"x-fake-behaviour": "chunks:4,chunk-delay:0.5"}  # each stream open ~2 s
    body = {**CHAT, "stream_options": {"include_usage": True}}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:

        async def one() -> tuple[int, bytes]:
            async with session.post(url, json=body, headers=headers) as response:
                return response.status, await response.read()

        streams = [asyncio.ensure_future(one()) for _ in range(STREAMS)]
        await asyncio.sleep(1.2)  # all opened, none finished yet
        async with session.get(proxy.root_url + "/metrics") as response:
            held = metric(await response.text(), "llm_proxy_in_flight")
        results = await asyncio.gather(*streams)
    assert held == STREAMS
    assert [status for status, _ in results] == [200] * STREAMS
    assert all(text.endswith(b"data: [DONE]\n\n") for _, text in results)
    usage = [json.loads(line) for line in proxy.log_lines() if '"event":"call"' in line]
    assert sum(call["completionTokens"] for call in usage) == 4 * STREAMS
