"""A watch on the proxy's one Secret through the Kubernetes API (`key_source=api`).

The plain HTTP watch protocol on the aiohttp client the proxy already has, rather than a
Kubernetes client library: list the Secret with `fieldSelector=metadata.name=<name>`
(what a Role limited by `resourceNames` allows), then watch from the list's
resourceVersion, following it through ADDED/MODIFIED/DELETED/BOOKMARK events. A watch
the server ends (its timeoutSeconds) is resumed from the last resourceVersion at once; a
`410 Gone` (the version was compacted) relists; a lost connection or a refusal is retried
with capped exponential backoff. The credentials are the pod's own: the projected
ServiceAccount token (re-read for every request, the kubelet rotates it), the cluster CA
and the namespace from the standard in-pod directory, the API server from
KUBERNETES_SERVICE_HOST/PORT. Measured against the alternatives (bench-free, import time
and peak RSS of the proxy's imports): lightkube adds ~5 MiB and ~0.1 s, kubernetes_asyncio
~36 MiB and ~0.45 s; this adds neither.

The key travels only from the API response into a LiveKey; nothing here logs or raises
with it. Status messages from the API (refusals) name users and resources, never data.
"""

import asyncio
import base64
import binascii
import contextlib
import json
import os
import queue
import random
import socket
import ssl
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote

import aiohttp

from proxy.key_file import LiveKey, key_text_verdict
from proxy.settings import Settings

WATCH_SECONDS = (240, 300)  # the server ends each watch after a random time in this range
BACKOFF_FIRST, BACKOFF_CAP = 0.25, 5.0  # seconds between attempts after a failure
CONNECT_TIMEOUT = 5.0
LIST_TIMEOUT = 10.0
MAX_EVENT_BYTES = 4 * 1024 * 1024  # a Secret is at most 1 MiB; base64 and JSON add a third
_MESSAGE_CHARS = 200  # an API Status message quoted in a reason, at most


@dataclass(frozen=True, slots=True)
class WatchTarget:
    """Where the Secret is and how to authenticate: all of it from the pod's environment."""

    api: str  # https://host:port (no trailing slash)
    namespace: str
    secret: str
    entry: str  # the Secret's data key that holds the provider key
    token_file: Path | None
    ca_file: Path | None

    @property
    def list_url(self) -> str:
        return f"{self.api}/api/v1/namespaces/{quote(self.namespace)}/secrets"

    @property
    def field_selector(self) -> str:
        return f"metadata.name={self.secret}"


def api_target(
    settings: Settings, environ: dict[str, str] | None = None
) -> WatchTarget | str | None:
    """With key_source=api: the target in this pod, or why there is none (said on /readyz);
    None with key_source=file."""
    if settings.key_source != "api":
        return None
    env = os.environ if environ is None else environ
    creds = settings.kube_credentials_dir
    api = settings.kube_api
    if api is None:
        host, port = env.get("KUBERNETES_SERVICE_HOST"), env.get("KUBERNETES_SERVICE_PORT")
        if not host or not port:
            return "KUBERNETES_SERVICE_HOST/PORT are unset (not in a pod?) and no kube_api"
        api = f"https://[{host}]:{port}" if ":" in host else f"https://{host}:{port}"
    namespace = settings.key_secret_namespace
    if namespace is None:
        try:
            namespace = (creds / "namespace").read_text(encoding="utf-8").strip()
        except OSError as exc:
            return f"no namespace: {creds / 'namespace'}: {exc.strerror or type(exc).__name__}"
    assert settings.key_secret is not None  # Settings requires it with key_source=api
    token, ca = creds / "token", creds / "ca.crt"
    return WatchTarget(
        api=api.rstrip("/"),
        namespace=namespace,
        secret=settings.key_secret,
        entry=settings.key_file.name,
        token_file=token if token.exists() else None,
        ca_file=ca if ca.exists() else None,
    )


class WatchSink(Protocol):
    """What the watch reports to (proxy.keysource.KeySource, or the supervisor's bridge)."""

    def adopt_api(self, latest: LiveKey | None, why: str) -> None: ...

    def api_broken(self, why: str) -> None: ...

    def api_resumed(self) -> None: ...


class _Refused(Exception):
    """The API answered with an error status; the text is safe to show."""


class _Gone(Exception):
    """410: the resourceVersion is too old; list again."""


def secret_key(secret: dict[str, Any] | None, entry: str) -> tuple[LiveKey | None, str]:
    """The usable key in a Secret object, or None and why (never quoting the content)."""
    if secret is None:
        return None, "the Secret does not exist"
    raw = (secret.get("data") or {}).get(entry)
    if raw is None:
        return None, f"the Secret has no {entry!r} entry"
    try:
        text = base64.b64decode(raw, validate=True).decode("utf-8")
    except (binascii.Error, ValueError, TypeError):
        return None, f"the Secret's {entry!r} entry is not base64 UTF-8 text"
    verdict = key_text_verdict(text)
    if isinstance(verdict, str):
        return None, f"the Secret's {entry!r} entry: {verdict}"
    return verdict, "ok"


class SecretWatch:
    """List, then watch, forever; every outcome goes to `sink`. Cancel the task to stop."""

    def __init__(
        self,
        target: WatchTarget,
        sink: WatchSink,
        *,
        watch_seconds: tuple[int, int] = WATCH_SECONDS,
        backoff: tuple[float, float] = (BACKOFF_FIRST, BACKOFF_CAP),
    ) -> None:
        self.target = target
        self.sink = sink
        self.watch_seconds = watch_seconds
        self.backoff = backoff
        self.resource_version: str | None = None
        self._failures = 0

    async def run(self) -> None:
        while True:
            try:
                async with self._session() as session:
                    while True:
                        listed = self.resource_version is None
                        if listed:
                            await self._list(session)
                        try:
                            await self._watch(session)
                        except _Gone:
                            if listed:  # too old already: a server in trouble, back off
                                raise _Refused("410 Gone for a fresh list's version") from None
                            self.resource_version = None  # relist at once
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.sink.api_broken(_reason(exc))
            self._failures += 1
            first, cap = self.backoff
            delay = min(cap, first * 2 ** (self._failures - 1))
            await asyncio.sleep(delay * random.uniform(0.5, 1.0))  # noqa: S311 - jitter only

    def _session(self) -> aiohttp.ClientSession:
        """A fresh session (and TLS context: the CA is re-read) after every failure."""
        context: ssl.SSLContext | bool = False
        if self.target.api.startswith("https:"):
            ca = self.target.ca_file
            context = ssl.create_default_context(cafile=None if ca is None else str(ca))
        return aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=context, limit=1),
            timeout=aiohttp.ClientTimeout(total=None, connect=CONNECT_TIMEOUT),
            read_bufsize=MAX_EVENT_BYTES,
            trust_env=False,  # never through the egress proxy of HTTPS_PROXY
        )

    def _headers(self) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        token_file = self.target.token_file
        if token_file is not None:
            try:
                token = token_file.read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise _Refused(f"cannot read the ServiceAccount token: {exc.strerror}") from None
            headers["Authorization"] = f"Bearer {token}"
        return headers

    async def _list(self, session: aiohttp.ClientSession) -> None:
        params = {"fieldSelector": self.target.field_selector}
        async with session.get(
            self.target.list_url,
            params=params,
            headers=self._headers(),
            timeout=aiohttp.ClientTimeout(total=LIST_TIMEOUT, connect=CONNECT_TIMEOUT),
        ) as response:
            await _check(response)
            body = await response.json()
        items = [i for i in body.get("items") or [] if _name(i) == self.target.secret]
        self.resource_version = str(body["metadata"]["resourceVersion"])
        self.sink.adopt_api(*secret_key(items[0] if items else None, self.target.entry))

    async def _watch(self, session: aiohttp.ClientSession) -> None:
        """One watch request, to its end; events move `resource_version` along."""
        seconds = random.randint(*self.watch_seconds)  # noqa: S311 - spreads reconnects
        params = {
            "fieldSelector": self.target.field_selector,
            "watch": "true",
            "allowWatchBookmarks": "true",
            "resourceVersion": str(self.resource_version),
            "timeoutSeconds": str(seconds),
        }
        async with session.get(
            self.target.list_url,
            params=params,
            headers=self._headers(),
            timeout=aiohttp.ClientTimeout(
                total=None, connect=CONNECT_TIMEOUT, sock_read=seconds + 30
            ),
        ) as response:
            if response.status == 410:
                raise _Gone()
            await _check(response)
            self.sink.api_resumed()
            while line := await response.content.readline():
                if line.strip():
                    self._event(json.loads(line))
                    self._failures = 0  # an event, not an error: the backoff starts over
            self._failures = 0  # the server ended the watch as asked

    def _event(self, event: dict[str, Any]) -> None:
        kind, obj = event.get("type"), event.get("object") or {}
        if kind == "ERROR":
            if obj.get("code") == 410:
                raise _Gone()
            raise _Refused(f"watch error {obj.get('code')}: {_message(obj)}")
        version = (obj.get("metadata") or {}).get("resourceVersion")
        if version:
            self.resource_version = str(version)
        if kind in ("ADDED", "MODIFIED") and _name(obj) == self.target.secret:
            self.sink.adopt_api(*secret_key(obj, self.target.entry))
        elif kind == "DELETED" and _name(obj) == self.target.secret:
            self.sink.adopt_api(None, "the Secret was deleted")


def _name(obj: dict[str, Any]) -> str | None:
    name = (obj.get("metadata") or {}).get("name")
    return None if name is None else str(name)


def _message(status: Any) -> str:
    text = str(status.get("message", "")) if isinstance(status, dict) else ""
    return text[:_MESSAGE_CHARS]


async def _check(response: aiohttp.ClientResponse) -> None:
    """Raise with the API's own Status message on anything but 200."""
    if response.status == 200:
        return
    try:
        message = _message(await response.json(content_type=None))
    except (ValueError, aiohttp.ClientError):
        message = ""
    raise _Refused(f"HTTP {response.status} {response.reason or ''}: {message}".rstrip(": "))


def _reason(exc: Exception) -> str:
    """A short, key-free account of a failure for /readyz and the log."""
    if isinstance(exc, _Refused):
        return str(exc)
    if isinstance(exc, TimeoutError):
        return "timed out"
    text = str(exc)[:_MESSAGE_CHARS]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class ThreadedWatch:
    """The watch on a daemon thread with its own event loop, for the supervisor of workers.

    The supervisor runs no event loop (it forks replacement workers), so the watch runs
    beside it: what the watch reports is queued here and `wake` is written; the
    supervisor's loop then calls `deliver(sink)` on its own thread, so the key state is
    only ever touched there. One watch per pod, as one file reader per pod.
    """

    def __init__(self, target: WatchTarget, wake: socket.socket) -> None:
        self._target = target
        self._wake = wake
        self._events: queue.SimpleQueue[tuple[str, tuple[Any, ...]]] = queue.SimpleQueue()

    def start(self) -> None:
        def run() -> None:
            with contextlib.suppress(Exception):  # the pod then serves the file, as said
                asyncio.run(SecretWatch(self._target, self).run())

        threading.Thread(target=run, name="secret-watch", daemon=True).start()

    def deliver(self, sink: WatchSink) -> None:
        """Hand every queued report to `sink`, in order (call on the supervisor's thread)."""
        while True:
            try:
                name, args = self._events.get_nowait()
            except queue.Empty:
                return
            getattr(sink, name)(*args)

    def _put(self, name: str, *args: Any) -> None:
        self._events.put((name, args))
        with contextlib.suppress(OSError):  # full: the supervisor's next tick delivers it
            self._wake.send(b"w")

    def adopt_api(self, latest: LiveKey | None, why: str) -> None:
        self._put("adopt_api", latest, why)

    def api_broken(self, why: str) -> None:
        self._put("api_broken", why)

    def api_resumed(self) -> None:
        self._put("api_resumed")
