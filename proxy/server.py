"""Run the app on a socket: start, report ready, drain on SIGTERM, stop."""

import asyncio
import signal
import sys
import time
from dataclasses import dataclass
from typing import TextIO

from aiohttp import web

from proxy.app import ProxyState
from proxy.settings import Settings


@dataclass
class RunningProxy:
    """A listening proxy: where it is, and how to stop it gracefully."""

    runner: web.ServerRunner
    state: ProxyState
    port: int

    @property
    def base_url(self) -> str:
        return f"http://{self.state.settings.host}:{self.port}/v1"

    async def stop(self) -> None:
        """Stop accepting, wait up to drain_timeout for in-flight calls, then close."""
        state = self.state
        state.draining = True
        state.log.event("draining", inFlight=state.forwarder.in_flight)
        await self.runner.cleanup()
        await state.close()
        state.log.event("stopped")
        state.log.flush()


async def start(settings: Settings, log_stream: TextIO) -> RunningProxy:
    """Listen on settings.host:port (port 0 picks a free one)."""
    began = time.perf_counter()
    state = ProxyState(settings, log_stream)
    state.open()
    server = web.Server(
        state.dispatch,
        handler_cancellation=True,  # a client that goes away cancels its upstream call
        access_log=None,  # the proxy writes its own JSON access log
    )
    runner = web.ServerRunner(server, shutdown_timeout=settings.drain_timeout)
    await runner.setup()
    site = web.TCPSite(runner, settings.host, settings.port, backlog=1024)
    await site.start()
    port = int(runner.addresses[0][1])
    key = state.keys.current
    state.log.event(
        "listening",
        host=settings.host,
        port=port,
        upstream=settings.upstream,
        allowedModels=list(settings.allowed_models),
        disabled=settings.disabled,
        keyFingerprint=None if key is None else key.fingerprint,
        startupMs=round((time.perf_counter() - began) * 1000, 1),
    )
    return RunningProxy(runner, state, port)


async def serve(settings: Settings, log_stream: TextIO = sys.stdout) -> None:
    """Serve until SIGTERM or SIGINT, then drain."""
    proxy = await start(settings, log_stream)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    await proxy.stop()


def run(settings: Settings) -> None:
    """Entry point for `python -m proxy serve`: uvloop when installed."""
    try:
        import uvloop  # optional speed-up, pinned in requirements.txt
    except ImportError:
        asyncio.run(serve(settings))
    else:
        uvloop.run(serve(settings))
