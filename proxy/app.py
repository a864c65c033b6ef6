"""Wires settings, key source, forwarder and observability into one aiohttp app."""

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import TextIO

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from proxy import errors
from proxy.forward import Forwarder
from proxy.keysource import KeySource, LiveKey
from proxy.observability import EventLog, Metrics
from proxy.settings import Settings


class ProxyState:
    """Everything one running proxy holds; handlers are its bound methods."""

    def __init__(self, settings: Settings, log_stream: TextIO) -> None:
        self.settings = settings
        self.log = EventLog(log_stream)
        self.metrics = Metrics()
        self.keys = KeySource(settings.key_file, settings.key_poll_interval, self._key_changed)
        self.forwarder = Forwarder(settings, self.keys, self.metrics, self.log)
        self.draining = False

    def _key_changed(self, key: LiveKey | None, result: str) -> None:
        self.metrics.key_loaded.set(0 if key is None else 1)
        if result != "initial":
            self.metrics.key_reloads.labels(result).inc()
        self.log.write(
            {
                "event": f"key_{result}",
                "keyFile": str(self.settings.key_file),
                "keyFingerprint": None if key is None else key.fingerprint,
            }
        )

    async def healthz(self, _request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(self, _request: web.Request) -> web.Response:
        key = self.keys.current
        reason = None
        if self.settings.disabled:
            reason = "disabled"
        elif self.draining:
            reason = "draining"
        elif key is None:
            reason = "key missing or empty"
        fingerprint = None if key is None else key.fingerprint
        if reason is not None:
            body = {"status": "not ready", "reason": reason, "keyFingerprint": fingerprint}
            return web.json_response(body, status=503)
        return web.json_response({"status": "ready", "keyFingerprint": fingerprint})

    async def metrics_page(self, _request: web.Request) -> web.Response:
        return web.Response(
            body=generate_latest(self.metrics.registry),
            headers={"Content-Type": CONTENT_TYPE_LATEST},
        )

    async def not_found(self, request: web.Request) -> web.Response:
        return errors.not_found(request.path).to_response()

    async def lifecycle(self, _app: web.Application) -> AsyncIterator[None]:
        """Open the upstream pool and start the key watcher; undo both at shutdown."""
        self.forwarder.open_session()
        watcher = asyncio.create_task(self.keys.watch())
        yield
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
        await self.forwarder.close_session()


def build_app(settings: Settings, log_stream: TextIO) -> tuple[web.Application, ProxyState]:
    state = ProxyState(settings, log_stream)
    # client_max_size makes aiohttp itself refuse oversized bodies while reading.
    app = web.Application(client_max_size=settings.max_body_bytes)
    app.cleanup_ctx.append(state.lifecycle)
    app.router.add_get("/healthz", state.healthz)
    app.router.add_get("/readyz", state.readyz)
    app.router.add_get("/metrics", state.metrics_page)
    app.router.add_route("*", "/v1/{tail:.*}", state.forwarder.handle)
    app.router.add_route("*", "/{tail:.*}", state.not_found)
    return app, state
