"""Wires settings, key source, forwarder and observability into one request handler.

aiohttp's low-level server is used without web.Application: the proxy's routes are
a fixed table (proxy.routes), so a router, a middleware chain and signals would be
per-request work with nothing to do; a dict of handlers built from the table does.
"""

import asyncio
import contextlib
import os
import socket
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from proxy import errors
from proxy.forward import Forwarder
from proxy.key_file import LiveKey
from proxy.keysource import KeySource
from proxy.observability import EventLog, LogStream, Metrics
from proxy.routes import FORWARDED_PREFIX, LOCAL, Local
from proxy.secret_watch import api_target
from proxy.settings import Settings
from proxy.worker_link import ScrapeIncomplete, SupervisorLink

if TYPE_CHECKING:
    from proxy.identity.gate import IdentityGate

Handler = Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]


async def _answered(response: web.StreamResponse) -> web.StreamResponse:
    return response


def _identity_gate(settings: Settings, log: EventLog) -> "IdentityGate | None":
    """The identity hook when LLM_PROXY_IDENTITY_MODE is not off (PyJWT loaded only then)."""
    if settings.identity_mode == "off":
        return None
    from proxy.identity.gate import IdentityGate, identity_config

    return IdentityGate(identity_config(settings, dict(os.environ)), log)


class ProxyState:
    """Everything one running proxy holds; handlers are its bound methods."""

    def __init__(
        self,
        settings: Settings,
        log_stream: LogStream,
        supervisor: socket.socket | None = None,
        key: LiveKey | None = None,
    ) -> None:
        """`supervisor`: a worker's link to proxy.workers, which then owns the key (`key`
        is the one it held at the fork) and answers /metrics for the whole pod."""
        self.settings = settings
        self.log = EventLog(log_stream)
        self.metrics = Metrics(settings.allowed_models)
        self.keys = KeySource(
            settings.key_file,
            settings.key_poll_interval,
            self._key_changed,
            api=None if supervisor is not None else api_target(settings),
            api_grace=settings.key_api_grace,
            on_source=self._key_source_changed,
        )
        self.forwarder = Forwarder(settings, self.keys, self.metrics, self.log)
        self.metrics.in_flight_source = lambda: self.forwarder.in_flight
        self.identity = _identity_gate(settings, self.log)
        self.forwarder.policy.caller_check = self.identity
        answers: dict[Local, Handler] = {
            Local.HEALTH: self._healthz,
            Local.READY: self._readyz,
            Local.METRICS: self._metrics,
        }
        # The API port answers /metrics only while no metrics port is set; the metrics
        # port answers it and nothing else, so a scraper let in there cannot reach /v1.
        self.api_routes = {
            path: answers[kind]
            for path, kind in LOCAL.items()
            if kind is not Local.METRICS or settings.metrics_port is None
        }
        self.metrics_routes = {p: answers[k] for p, k in LOCAL.items() if k is Local.METRICS}
        self.draining = False
        self._watcher: asyncio.Task[None] | None = None
        self.link: SupervisorLink | None = None
        self.on_supervisor_lost: Callable[[], None] = lambda: None
        if supervisor is not None:
            self.link = SupervisorLink(supervisor, self.keys, self.metrics)
            self.keys.current = key

    def _key_changed(self, key: LiveKey | None, result: str) -> None:
        self.metrics.key_loaded.set(0 if key is None else 1)
        self.metrics.key_fingerprint = None if key is None else key.fingerprint
        if result != "initial":
            self.metrics.key_reloads.labels(result).inc()
        self.log.event(
            f"key_{result}",
            keyFile=str(self.settings.key_file),
            keyFingerprint=None if key is None else key.fingerprint,
        )

    def _key_source_changed(self, source: str, api_status: str) -> None:
        self.metrics.set_key_source(source)
        if self.keys.uses_api:
            self.log.event("key_source", keySource=source, keyApi=api_status)

    def dispatch(self, request: web.BaseRequest) -> Awaitable[web.StreamResponse]:
        """The API port's router: /v1/... is forwarded, the local routes answer here.

        Not a coroutine itself: it hands aiohttp the handler's, one frame fewer for
        every stream held.
        """
        path = request.path
        if path.startswith(FORWARDED_PREFIX):
            return self.forwarder.handle(request)
        handler = self.api_routes.get(path)
        if handler is None:
            return _answered(errors.not_found(path).to_response())
        return handler(request)

    async def metrics_dispatch(self, request: web.BaseRequest) -> web.StreamResponse:
        """The metrics port (settings.metrics_port): its routes only."""
        handler = self.metrics_routes.get(request.path)
        if handler is None:
            return errors.not_found(request.path).to_response()
        return await handler(request)

    async def _healthz(self, request: web.BaseRequest) -> web.Response:
        return web.json_response({"status": "ok"})

    async def _readyz(self, request: web.BaseRequest) -> web.Response:
        return self.readyz()

    async def _metrics(self, request: web.BaseRequest) -> web.Response:
        return await self.metrics_response()

    async def metrics_response(self) -> web.Response:
        if self.link is None:
            body = generate_latest(self.metrics.registry)
        else:
            try:
                body = await self.link.scrape()
            except ScrapeIncomplete as exc:
                return web.Response(status=503, text=f"metrics incomplete: {exc}\n")
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

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
        body: dict[str, object] = {"status": "ready", "keyFingerprint": fingerprint}
        if reason is not None:
            body = {"status": "not ready", "reason": reason, "keyFingerprint": fingerprint}
        if self.keys.api_status != "off":  # key_source=api: which source, and the watch's state
            body["keySource"] = self.keys.source
            body["keyApi"] = self.keys.api_status
        if self.link is not None:
            body["worker"] = os.getpid()  # which of the pod's workers answered
        return web.json_response(body, status=200 if reason is None else 503)

    async def open(self) -> None:
        """Read the key, open the upstream pool and start the key watcher.

        A worker instead listens to its supervisor, which watches the key for the pod.
        """
        if self.link is None:
            await self.keys.load()
            self._watcher = asyncio.create_task(self.keys.watch())
        else:
            await self.link.connect()
            self._watcher = asyncio.create_task(self.link.run(self.on_supervisor_lost))
        self.forwarder.open_session()
        if self.identity is not None:
            await self.identity.open()

    async def close(self) -> None:
        if self.identity is not None:
            await self.identity.close()
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
        if self.link is not None:
            self.link.close()
        await self.forwarder.close_session()
