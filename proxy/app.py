"""Wires settings, key source, forwarder and observability into one request handler.

aiohttp's low-level server is used without web.Application: the proxy has four
fixed routes, so a router, a middleware chain and signals would be per-request
work with nothing to do.
"""

import asyncio
import contextlib

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from proxy import errors
from proxy.forward import Forwarder
from proxy.keysource import KeySource, LiveKey
from proxy.observability import EventLog, LogStream, Metrics
from proxy.settings import Settings


class ProxyState:
    """Everything one running proxy holds; handlers are its bound methods."""

    def __init__(self, settings: Settings, log_stream: LogStream) -> None:
        self.settings = settings
        self.log = EventLog(log_stream)
        self.metrics = Metrics(settings.allowed_models)
        self.keys = KeySource(settings.key_file, settings.key_poll_interval, self._key_changed)
        self.forwarder = Forwarder(settings, self.keys, self.metrics, self.log)
        self.metrics.in_flight_source = lambda: self.forwarder.in_flight
        self.draining = False
        self._watcher: asyncio.Task[None] | None = None

    def _key_changed(self, key: LiveKey | None, result: str) -> None:
        self.metrics.key_loaded.set(0 if key is None else 1)
        if result != "initial":
            self.metrics.key_reloads.labels(result).inc()
        self.log.event(
            f"key_{result}",
            keyFile=str(self.settings.key_file),
            keyFingerprint=None if key is None else key.fingerprint,
        )

    async def dispatch(self, request: web.BaseRequest) -> web.StreamResponse:
        """The only router: /v1/... is forwarded, three fixed paths answer locally."""
        path = request.path
        if path.startswith("/v1/"):
            return await self.forwarder.handle(request)
        if path == "/healthz":
            return web.json_response({"status": "ok"})
        if path == "/readyz":
            return self.readyz()
        if path == "/metrics":
            return web.Response(
                body=generate_latest(self.metrics.registry),
                headers={"Content-Type": CONTENT_TYPE_LATEST},
            )
        return errors.not_found(path).to_response()

    def readyz(self) -> web.Response:
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

    async def open(self) -> None:
        """Read the key, open the upstream pool and start the key watcher."""
        await self.keys.load()
        self.forwarder.open_session()
        self._watcher = asyncio.create_task(self.keys.watch())

    async def close(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
        await self.forwarder.close_session()
