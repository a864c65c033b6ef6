"""`LLM_PROXY_WORKERS=N` (N > 1): N worker processes serving one port, one pod view.

The supervisor (this process) binds the port once and forks the workers, which all
accept on that socket. It keeps what must be one per pod:

- The key: only the supervisor reads the key file (same polling and miss rule as a
  single process) and sends each change to every worker over its socketpair, so all
  switch together and /readyz shows one fingerprint whichever worker answers. The
  key crosses only that private socketpair, never argv or the environment.
- Metrics: a scrape on any worker gets the others' counts through the supervisor
  (proxy.worker_link), so /metrics shows the pod's totals. Nothing goes to disk.
- Drain: SIGTERM (or SIGINT) is passed to every worker, which drains as a single
  process does (readiness "draining", in-flight calls finish within drain_timeout);
  the supervisor exits once all have.
- Worker death: a worker that dies while serving is replaced at once (forked from
  this clean, loop-free process). More than RESTART_LIMIT deaths within
  RESTART_WINDOW seconds stop the whole pod (exit 1) so Kubernetes restarts it.
- Liveness: the supervisor never blocks on a worker (non-blocking sockets, a
  per-worker outbox), asks each worker for at most one snapshot at a time (scrapes
  that arrive meanwhile share its answer), and kills a worker only when it has not
  answered a ping for STUCK_SECONDS: its loop is frozen, not just busy.

The supervisor runs no event loop (so forking a replacement is safe): one selector
over the workers' sockets and a signal wake-up socket. What a worker runs is handed to
it (`WorkerMain`, proxy.server.run_worker), as uvicorn's Multiprocess takes its target:
this module knows nothing of the server.
"""

import collections
import contextlib
import json
import os
import selectors
import signal
import socket
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from proxy.key_file import READ_TIMEOUT, LiveKey, read_key_file_blocking, read_off_thread
from proxy.keysource import KeySource
from proxy.logstream import LineBatchWriter
from proxy.observability import EventLog
from proxy.secret_watch import ThreadedWatch, api_target
from proxy.settings import Settings
from proxy.upstream_url import display_upstream

# A forked worker's whole life: the settings, the listening socket(s) it accepts on, its
# link to the supervisor and the key the supervisor held at the fork; it returns once
# drained.
WorkerMain = Callable[
    [Settings, socket.socket, socket.socket | None, socket.socket, LiveKey | None], None
]

RESTART_LIMIT = 5
RESTART_WINDOW = 60.0
SCRAPE_WAIT = 1.0  # how long a scrape waits for the other workers' counts
PING_INTERVAL = 5.0  # how often each worker is asked to show its loop still runs
STUCK_SECONDS = 30.0  # an unanswered ping this old: the worker's loop is frozen, kill it
STOP_GRACE = 5.0  # after drain_timeout: how long workers get to exit before SIGKILL


@dataclass
class _Worker:
    pid: int
    sock: socket.socket
    ready: bool = False
    inbox: bytearray = field(default_factory=bytearray)
    outbox: bytearray = field(default_factory=bytearray)  # what its socket did not take yet
    snap_pending: bool = False  # a snapshot request is out; scrapes share its answer
    ping_sent: float | None = None  # monotonic time of the unanswered ping, if any
    next_ping: float = 0.0


@dataclass
class _Scrape:
    requester: _Worker
    request_id: int
    waiting: set[int]
    deadline: float
    parts: list[Any] = field(default_factory=list)


class _KeyRead:
    """One key-file read off this thread (a hung mount must not stop the supervisor)."""

    def __init__(self, path: Path, wake: socket.socket) -> None:
        self.started = time.monotonic()
        self.done = False
        self.result: LiveKey | None = None

        def deliver(verdict: LiveKey | str) -> None:
            self.result = verdict if isinstance(verdict, LiveKey) else None
            self.done = True
            with contextlib.suppress(OSError):  # wake-up socket full: the next tick sees it
                wake.send(b"k")

        read_off_thread(path, deliver)


class Supervisor:
    """Binds, forks, relays and supervises; `run()` returns the process exit code."""

    def __init__(self, settings: Settings, worker_main: WorkerMain) -> None:
        self.settings = settings
        self.worker_main = worker_main
        sys.stdout.flush()
        self.log = EventLog(LineBatchWriter(sys.stdout.fileno()))
        target = api_target(settings)
        self.keys = KeySource(
            settings.key_file,
            settings.key_poll_interval,
            self._key_changed,
            api=target,
            api_grace=settings.key_api_grace,
            on_source=self._key_source_changed,
        )
        # key_source=api: the one watch of the pod, on a thread (this process runs no loop).
        self.watch: ThreadedWatch | None = None
        self.sent_key_state: tuple[str, str] = ("none", "off")
        self.reloads: dict[str, int] = {}
        self.workers: dict[int, _Worker] = {}
        self.scrapes: dict[int, _Scrape] = {}
        self.next_scrape = 0
        self.stopping = False
        self.stop_deadline = 0.0
        self.restarts: collections.deque[float] = collections.deque()
        self.selector = selectors.DefaultSelector()
        self.wake_r, self.wake_w = socket.socketpair()
        self.listener: socket.socket | None = None
        self.metrics_listener: socket.socket | None = None  # settings.metrics_port's
        self.announced = False
        self.began = time.perf_counter()

    # -- start and main loop ---------------------------------------------------------

    def run(self) -> int:
        self.listener = _listen(self.settings.host, self.settings.port)
        if self.settings.metrics_port is not None:
            self.metrics_listener = _listen(self.settings.host, self.settings.metrics_port)
        first = read_key_file_blocking(self.settings.key_file)
        self.keys.begin(first if isinstance(first, LiveKey) else None)
        for sock in (self.wake_r, self.wake_w):
            sock.setblocking(False)
        self.selector.register(self.wake_r, selectors.EVENT_READ)
        signal.set_wakeup_fd(self.wake_w.fileno(), warn_on_full_buffer=False)
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._on_stop_signal)
        signal.signal(signal.SIGCHLD, lambda *_: None)  # only to wake the selector
        for _ in range(self.settings.workers):
            self._spawn()
        if self.keys.api_target is not None:  # after the first forks: they need no thread
            self.watch = ThreadedWatch(self.keys.api_target, self.wake_w)
            self.watch.start()
        try:
            return self._loop()
        finally:
            self.log.flush()

    def _loop(self) -> int:
        reading: _KeyRead | None = None
        next_poll = time.monotonic() + self.settings.key_poll_interval
        while True:
            now = time.monotonic()
            timeout = max(0.0, min(next_poll, self._next_deadline()) - now)
            for key, events in self.selector.select(timeout):
                if key.fileobj is self.wake_r:
                    _drain(self.wake_r)
                    continue
                if events & selectors.EVENT_WRITE:
                    self._flush(key.data)
                if events & selectors.EVENT_READ:
                    self._receive(key.data)
            if self.stopping and self.stop_deadline == 0.0:
                self._stop_workers()
            exit_code = self._reap()
            if exit_code is not None:
                return exit_code
            if self.stopping and not self.workers:
                self.log.event("stopped", workers=self.settings.workers)
                return 0
            now = time.monotonic()
            if self.stopping and now > self.stop_deadline:
                for pid in self.workers:
                    _signal(pid, signal.SIGKILL)
            if self.watch is not None:
                self.watch.deliver(self.keys)
                self._send_key_state()
            if reading is not None and reading.done:
                self.keys.adopt(reading.result)
                reading = None
            elif reading is not None and now - reading.started > READ_TIMEOUT:
                self.keys.adopt(None)  # a stuck read counts as a miss, as in one process
                reading.started = now
            if now >= next_poll:
                next_poll = now + self.settings.key_poll_interval
                if reading is None:
                    reading = _KeyRead(self.settings.key_file, self.wake_w)
            self._expire_scrapes(now)
            self._check_liveness(now)

    def _next_deadline(self) -> float:
        deadlines = [scrape.deadline for scrape in self.scrapes.values()]
        deadlines += [worker.next_ping for worker in self.workers.values()]
        if self.stopping and self.stop_deadline:
            deadlines.append(self.stop_deadline)
        return min(deadlines, default=float("inf"))

    def _on_stop_signal(self, signum: int, frame: object) -> None:
        self.stopping = True

    # -- workers ---------------------------------------------------------------------

    def _spawn(self) -> None:
        assert self.listener is not None
        self.log.flush()  # nothing pending may be written twice by the child
        ours, theirs = socket.socketpair()
        pid = os.fork()
        if pid == 0:  # the worker
            os._exit(self._become_worker(theirs, ours))
        theirs.close()
        ours.setblocking(False)  # the supervisor never waits on a worker
        worker = _Worker(pid, ours, next_ping=time.monotonic() + PING_INTERVAL)
        self.workers[pid] = worker
        self.selector.register(ours, selectors.EVENT_READ, worker)
        if self.keys.uses_api:
            self._send(worker, self._key_state(self.keys.current))

    def _become_worker(self, link: socket.socket, ours: socket.socket) -> int:
        """In the child: drop the supervisor's state, then serve until drained."""
        try:
            signal.set_wakeup_fd(-1)
            for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD):
                signal.signal(signum, signal.SIG_DFL)
            self.selector.close()
            for sock in (ours, self.wake_r, self.wake_w, *(w.sock for w in self.workers.values())):
                sock.close()
            assert self.listener is not None
            self.worker_main(
                self.settings, self.listener, self.metrics_listener, link, self.keys.current
            )
            return 0
        except BaseException:  # a worker must never return into the supervisor's code
            traceback.print_exc()  # to stderr; nothing here holds the key (LiveKey hides it)
            return 70

    def _reap(self) -> int | None:
        """Collect exited workers; replace them unless stopping. An exit code ends all."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return None
            if pid == 0:
                return None
            worker = self.workers.pop(pid, None)
            if worker is None:
                continue
            _close_link(self.selector, worker)
            for scrape in self.scrapes.values():
                scrape.waiting.discard(pid)
            if self.stopping:
                continue
            code = os.waitstatus_to_exitcode(status)
            self.log.event("worker_exited", pid=pid, exitCode=code)
            now = time.monotonic()
            self.restarts.append(now)
            while self.restarts and now - self.restarts[0] > RESTART_WINDOW:
                self.restarts.popleft()
            if len(self.restarts) > RESTART_LIMIT:
                self.log.event("workers_failing", restarts=len(self.restarts))
                self.stopping = True
                self._stop_workers()
                self._wait_all()
                return 1
            self._spawn()

    def _stop_workers(self) -> None:
        self.stop_deadline = time.monotonic() + self.settings.drain_timeout + STOP_GRACE
        self.log.event("draining", workers=len(self.workers))
        for pid in self.workers:
            _signal(pid, signal.SIGTERM)

    def _wait_all(self) -> None:
        while self.workers and time.monotonic() < self.stop_deadline:
            self._reap()
            time.sleep(0.01)
        for pid in self.workers:
            _signal(pid, signal.SIGKILL)

    # -- messages --------------------------------------------------------------------

    def _receive(self, worker: _Worker) -> None:
        try:
            data = worker.sock.recv(1 << 20)
        except (BlockingIOError, TimeoutError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            _close_link(self.selector, worker)  # it is exiting; _reap collects it
            return
        worker.inbox += data
        while (end := worker.inbox.find(b"\n")) >= 0:
            line = bytes(worker.inbox[:end])
            del worker.inbox[: end + 1]
            self._handle(worker, json.loads(line))

    def _handle(self, worker: _Worker, message: dict[str, Any]) -> None:
        if "ready" in message:
            worker.ready = True
            if not self.announced and all(w.ready for w in self.workers.values()):
                self._announce()
        elif "scrape" in message:
            self.next_scrape += 1
            others = {pid for pid in self.workers if pid != worker.pid}
            scrape = _Scrape(worker, message["scrape"], others, time.monotonic() + SCRAPE_WAIT)
            self.scrapes[self.next_scrape] = scrape
            for pid in others:
                other = self.workers[pid]
                if not other.snap_pending:  # one request out per worker, whatever the load
                    other.snap_pending = True
                    self._send(other, {"snap": self.next_scrape})
            self._answer_if_complete(self.next_scrape)
        elif "snap" in message:
            # Taken after every scrape now waiting on this worker began: good for all.
            worker.snap_pending = False
            for scrape_id, pending in list(self.scrapes.items()):
                if worker.pid in pending.waiting:
                    pending.waiting.discard(worker.pid)
                    pending.parts.append(message["data"])
                    self._answer_if_complete(scrape_id)
        elif "pong" in message:
            worker.ping_sent = None

    def _answer_if_complete(self, scrape_id: int, expired: bool = False) -> None:
        scrape = self.scrapes[scrape_id]
        if scrape.waiting and not expired:
            return
        del self.scrapes[scrape_id]
        key = self.keys.current
        self._send(
            scrape.requester,
            {
                "merged": scrape.request_id,
                "parts": scrape.parts,
                "missing": len(scrape.waiting),
                "key_loaded": self.keys.current is not None,
                "key_reloads": self.reloads,
                "key_fingerprint": None if key is None else key.fingerprint,
                "key_source": self.keys.source,
            },
        )

    def _expire_scrapes(self, now: float) -> None:
        for scrape_id in [i for i, s in self.scrapes.items() if s.deadline <= now]:
            self._answer_if_complete(scrape_id, expired=True)

    def _send(self, worker: _Worker, message: dict[str, Any]) -> None:
        """Queue one line for a worker and send what its socket takes now, never waiting.

        What stays queued is small and bounded: one snapshot request, one ping and
        the key changes, per worker.
        """
        if worker.sock.fileno() < 0:
            return  # gone: _reap collects it
        worker.outbox += json.dumps(message, separators=(",", ":")).encode() + b"\n"
        self._flush(worker)

    def _flush(self, worker: _Worker) -> None:
        try:
            sent = worker.sock.send(worker.outbox) if worker.outbox else 0
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:  # gone: its exit is collected by _reap
            worker.outbox.clear()
            sent = 0
        del worker.outbox[:sent]
        if worker.sock.fileno() >= 0:
            events = selectors.EVENT_READ | (selectors.EVENT_WRITE if worker.outbox else 0)
            if self.selector.get_key(worker.sock).events != events:
                self.selector.modify(worker.sock, events, worker)

    def _check_liveness(self, now: float) -> None:
        """Ping each worker; kill one whose loop has not answered for STUCK_SECONDS."""
        if self.stopping:
            return
        for worker in list(self.workers.values()):
            if worker.ping_sent is not None and now - worker.ping_sent > STUCK_SECONDS:
                self.log.event("worker_stuck", pid=worker.pid, seconds=STUCK_SECONDS)
                worker.ping_sent = None
                _signal(worker.pid, signal.SIGKILL)  # _reap replaces it
            elif worker.ping_sent is None and now >= worker.next_ping:
                worker.ping_sent = now
                self._send(worker, {"ping": 1})
            if now >= worker.next_ping:
                worker.next_ping = now + PING_INTERVAL

    def _key_state(self, key: LiveKey | None) -> dict[str, Any]:
        """The message that gives a worker the key, where it comes from and the watch's state."""
        self.sent_key_state = (self.keys.source, self.keys.api_status)
        return {
            "key": None if key is None else key.value,
            "source": self.keys.source,
            "api": self.keys.api_status,
        }

    def _send_key_state(self) -> None:
        """Workers answer /readyz: tell them when the source or the watch's state moved."""
        if (self.keys.source, self.keys.api_status) != self.sent_key_state:
            message = self._key_state(self.keys.current)
            for worker in list(self.workers.values()):
                self._send(worker, message)

    def _key_source_changed(self, source: str, api_status: str) -> None:
        if self.keys.uses_api:
            self.log.event("key_source", keySource=source, keyApi=api_status)

    def _key_changed(self, key: LiveKey | None, result: str) -> None:
        if result != "initial":
            self.reloads[result] = self.reloads.get(result, 0) + 1
        message = self._key_state(key)
        for worker in list(self.workers.values()):
            self._send(worker, message)
        self.log.event(
            f"key_{result}",
            keyFile=str(self.settings.key_file),
            keyFingerprint=None if key is None else key.fingerprint,
        )

    def _announce(self) -> None:
        self.announced = True
        settings, key = self.settings, self.keys.current
        assert self.listener is not None
        self.log.event(
            "listening",
            host=settings.host,
            port=int(self.listener.getsockname()[1]),
            upstream=display_upstream(settings.upstream),
            allowedModels=list(settings.allowed_models),
            disabled=settings.disabled,
            keyFingerprint=None if key is None else key.fingerprint,
            metricsPort=(
                None if self.metrics_listener is None else self.metrics_listener.getsockname()[1]
            ),
            workers=len(self.workers),
            workerPids=sorted(self.workers),
            startupMs=round((time.perf_counter() - self.began) * 1000, 1),
        )


def _listen(host: str, port: int) -> socket.socket:
    """The one listening socket all workers accept on."""
    family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0][0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(1024)
    sock.setblocking(False)
    return sock


def _close_link(selector: selectors.BaseSelector, worker: _Worker) -> None:
    """Stop listening to a worker's socket (once); later sends to it fail quietly."""
    if worker.sock.fileno() >= 0:
        selector.unregister(worker.sock)
        worker.sock.close()


def _drain(sock: socket.socket) -> None:
    try:
        while sock.recv(4096):
            pass
    except (BlockingIOError, InterruptedError):
        pass


def _signal(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)
