"""Run the app on a socket: start, report ready, drain on SIGTERM, stop."""

import asyncio
import contextlib
import signal
import socket
import sys
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from proxy.app import ProxyState
from proxy.connections import GuardedServer
from proxy.gc_policy import settle_gc
from proxy.key_file import LiveKey, key_problem_at_start
from proxy.logstream import LineBatchWriter
from proxy.observability import LogStream
from proxy.settings import Settings
from proxy.upstream_url import display_upstream
from proxy.workers import Supervisor

_CUT_SECONDS = 0.5  # after the drain deadline: how long cancelled calls get to unwind


@dataclass
class RunningProxy:
    """A listening proxy: where it is, and how to stop it gracefully."""

    runner: web.ServerRunner
    state: ProxyState
    port: int
    metrics_runner: web.ServerRunner | None = None  # settings.metrics_port's listener
    metrics_port: int | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.state.settings.host}:{self.port}/v1"

    async def stop(self) -> None:
        """Drain within drain_timeout (+ about a second to cut what is left), then close.

        One bounded wait: /readyz answers "draining" and calls still arriving (while
        Kubernetes removes the pod from its Services) are served; once nothing is in
        flight or the deadline passes, the listener closes, calls still running
        (streams included) are cancelled, and the last log lines are flushed. The
        pod's terminationGracePeriodSeconds must exceed drain_timeout by a few seconds.
        """
        state = self.state
        forwarder = state.forwarder
        state.draining = True
        state.log.event("draining", inFlight=forwarder.in_flight)
        state.log.flush()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(state.settings.drain_timeout):
                await forwarder.wait_idle()
        forwarder.stopping = True
        for site in list(self.runner.sites):
            await site.stop()  # no new connections from here on
        running = set(forwarder.tasks)
        for task in running:
            task.cancel()
        if running:
            await asyncio.wait(running, timeout=_CUT_SECONDS)
        await self.runner.cleanup()  # idle keep-alive connections; bounded by shutdown_timeout
        if self.metrics_runner is not None:  # scrapes keep working through the drain
            await self.metrics_runner.cleanup()
        await state.close()
        state.log.event("stopped", cancelled=len(running))
        state.log.flush()


async def start(
    settings: Settings,
    log_stream: LogStream,
    state: ProxyState | None = None,
    sock: socket.socket | None = None,
    metrics_sock: socket.socket | None = None,
) -> RunningProxy:
    """Listen on settings.host:port (port 0 picks a free one), or serve `sock`; with
    settings.metrics_port, /metrics on that port (or `metrics_sock`) instead.

    A worker passes its `state` and the supervisor's listening `sock`; the supervisor
    then announces the pod as listening, so the worker does not.
    """
    began = time.perf_counter()
    worker = state is not None
    state = state or ProxyState(settings, log_stream)
    await state.open()
    server = GuardedServer(
        state.dispatch,
        head_timeout=settings.header_timeout,
        keepalive_timeout=settings.idle_timeout,  # idle keep-alive connections close
        handler_cancellation=True,  # a client that goes away cancels its upstream call
        access_log=None,  # the proxy writes its own JSON access log
    )
    # stop() has drained already; cleanup only closes what is left, quickly.
    runner = web.ServerRunner(server, shutdown_timeout=_CUT_SECONDS)
    await runner.setup()
    site: web.BaseSite
    if sock is None:
        site = web.TCPSite(runner, settings.host, settings.port, backlog=1024)
    else:
        site = web.SockSite(runner, sock)
    await site.start()
    port = int(runner.addresses[0][1])
    metrics_runner = await _start_metrics(settings, state, metrics_sock)
    metrics_port = None if metrics_runner is None else int(metrics_runner.addresses[0][1])
    if worker:
        return RunningProxy(runner, state, port, metrics_runner, metrics_port)
    key = state.keys.current
    state.log.event(
        "listening",
        host=settings.host,
        port=port,
        upstream=display_upstream(settings.upstream),
        allowedModels=list(settings.allowed_models),
        disabled=settings.disabled,
        keyFingerprint=None if key is None else key.fingerprint,
        metricsPort=metrics_port,
        startupMs=round((time.perf_counter() - began) * 1000, 1),
    )
    return RunningProxy(runner, state, port, metrics_runner, metrics_port)


async def _start_metrics(
    settings: Settings, state: ProxyState, sock: socket.socket | None
) -> web.ServerRunner | None:
    """The metrics port's own small server (only /metrics), when one is configured.

    With the API port's guards: head deadline, idle timeout, OpenAI-shaped 400s that
    never echo the input, and no unread body left behind.
    """
    if settings.metrics_port is None:
        return None
    server = GuardedServer(
        state.metrics_dispatch,
        head_timeout=settings.header_timeout,
        keepalive_timeout=settings.idle_timeout,
        access_log=None,
    )
    runner = web.ServerRunner(server, shutdown_timeout=_CUT_SECONDS)
    await runner.setup()
    site: web.BaseSite
    if sock is None:
        site = web.TCPSite(runner, settings.host, settings.metrics_port)
    else:
        site = web.SockSite(runner, sock)
    await site.start()
    return runner


async def serve_worker(
    settings: Settings,
    sock: socket.socket,
    metrics_sock: socket.socket | None,
    supervisor: socket.socket,
    key: LiveKey | None,
) -> None:
    """One of several worker processes (proxy.workers): serve until SIGTERM, then drain.

    A worker whose supervisor is gone drains and exits too, rather than serve on
    with a key nobody keeps current.
    """
    log_stream = LineBatchWriter(sys.stdout.fileno())
    state = ProxyState(settings, log_stream, supervisor, key)
    stop = asyncio.Event()
    state.on_supervisor_lost = stop.set
    proxy = await start(settings, log_stream, state, sock, metrics_sock)
    settle_gc()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    assert state.link is not None
    state.link.send({"ready": True})
    await stop.wait()
    await proxy.stop()


def run_worker(
    settings: Settings,
    sock: socket.socket,
    metrics_sock: socket.socket | None,
    supervisor: socket.socket,
    key: LiveKey | None,
) -> None:
    """What each forked worker of proxy.workers.Supervisor runs (its WorkerMain)."""
    run_loop(serve_worker(settings, sock, metrics_sock, supervisor, key))


async def serve(settings: Settings, log_stream: LogStream | None = None) -> None:
    """Serve until SIGTERM or SIGINT, then drain; the log goes to stdout in batches."""
    if log_stream is None:
        sys.stdout.flush()
        log_stream = LineBatchWriter(sys.stdout.fileno())
    proxy = await start(settings, log_stream)
    settle_gc()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    await proxy.stop()


def run(settings: Settings) -> int:
    """Entry point for `python -m proxy serve`: one process, or a supervisor of workers.

    With require_key, a key file without a usable key stops the start (exit 1) with one
    line saying why: in a pod that mounts its Secret, that is a misconfiguration that
    no wait would fix, and the line becomes the pod's termination message.
    """
    if settings.require_key and (problem := key_problem_at_start(settings.key_file)):
        print(
            f"llm-proxy: cannot start: no usable key in {settings.key_file}: {problem} "
            "(LLM_PROXY_REQUIRE_KEY is set)",
            file=sys.stderr,
        )
        return 1
    if settings.workers > 1:
        code: int = Supervisor(settings, run_worker).run()
        return code
    run_loop(serve(settings))
    return 0


def run_loop(main: Coroutine[Any, Any, None]) -> None:
    """Run `main` on uvloop when installed."""
    try:
        import uvloop  # optional speed-up, pinned in requirements.txt
    except ImportError:
        asyncio.run(main)
    else:
        uvloop.run(main)
