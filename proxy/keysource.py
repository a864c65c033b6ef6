"""The provider key, read from the mounted Secret file and kept current.

A poll task re-reads the file every `poll_interval` seconds instead of the
request path touching the filesystem. Reading through the path follows the
kubelet's `apiKey -> ..data/apiKey` symlinks, so the atomic `..data` swap is seen
as a plain content change. A new non-empty key is adopted at once; a missing or
empty file only drops the key after two reads in a row, so a writer that
truncates before writing never causes a failed request. Requests read
`current` (an attribute), which is always either the old or the new key.
"""

import asyncio
import contextlib
import os
import stat
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from proxy.fingerprint import key_fingerprint


@dataclass(frozen=True, slots=True)
class LiveKey:
    """A key together with its non-secret fingerprint and the header it makes."""

    value: str
    fingerprint: str
    authorization: str

    @classmethod
    def from_text(cls, text: str) -> "LiveKey":
        value = text.strip()
        return cls(value, key_fingerprint(value), f"Bearer {value}")

    def __repr__(self) -> str:  # never let a traceback or debug print show the key
        return f"LiveKey(fingerprint={self.fingerprint!r})"


ReloadListener = Callable[[LiveKey | None, str], None]


MAX_KEY_FILE_BYTES = 64 * 1024  # keys are < 1 KiB; a bigger "file" is not a key file
READ_TIMEOUT = 5.0  # a read that takes longer (hung mount) counts as a miss


def read_key_file(key_file: Path) -> LiveKey | None:
    """The key in `key_file`, or None when there is no usable one (`key_file_verdict`)."""
    verdict = key_file_verdict(key_file)
    return verdict if isinstance(verdict, LiveKey) else None


def key_file_verdict(key_file: Path) -> LiveKey | str:
    """The key in `key_file`, or why there is no usable one (never quoting the content).

    Unusable: missing, unreadable, not a regular file (a FIFO or device would block
    or never end), too big, blank, or with inner whitespace or control characters
    (e.g. a second line), which no Authorization header can carry.
    """
    try:
        fd = os.open(key_file, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        return exc.strerror or type(exc).__name__
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return "not a regular file"
        raw = os.read(fd, MAX_KEY_FILE_BYTES + 1)
        if len(raw) > MAX_KEY_FILE_BYTES:
            return f"larger than {MAX_KEY_FILE_BYTES} bytes, not a key"
        text = raw.decode("utf-8")
    except OSError as exc:
        return exc.strerror or type(exc).__name__
    except UnicodeDecodeError:
        return "not UTF-8 text"
    finally:
        os.close(fd)
    value = text.strip()
    if not value:
        return "empty"
    if not value.isprintable() or " " in value:
        return "holds whitespace or control characters inside the key (two lines?)"
    return LiveKey.from_text(value)


def read_key_file_blocking(key_file: Path) -> LiveKey | str:
    """`key_file_verdict`, waited for at most READ_TIMEOUT (a hung mount counts as a
    failed read), for callers without an event loop: the start check, the supervisor."""
    found: list[LiveKey | str] = []
    reader = threading.Thread(
        target=lambda: found.append(key_file_verdict(key_file)), name="key-read", daemon=True
    )
    reader.start()
    reader.join(READ_TIMEOUT)
    return found[0] if found else f"reading it took longer than {READ_TIMEOUT:g} s"


def key_problem_at_start(key_file: Path) -> str | None:
    """Why `key_file` holds no usable key right now (bounded like every read), or None."""
    verdict = read_key_file_blocking(key_file)
    return None if isinstance(verdict, LiveKey) else verdict


def start_key_read(key_file: Path) -> "asyncio.Future[LiveKey | None]":
    """`read_key_file` on a daemon thread; the future completes on the loop.

    A daemon thread, not the loop's executor: a read stuck in the kernel (hung NFS)
    can then neither freeze the loop nor keep the process from exiting.
    """
    loop = asyncio.get_running_loop()
    done: asyncio.Future[LiveKey | None] = loop.create_future()

    def deliver(result: LiveKey | None) -> None:
        if not done.done():
            done.set_result(result)

    def read() -> None:
        result = read_key_file(key_file)
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            loop.call_soon_threadsafe(deliver, result)

    threading.Thread(target=read, name="key-file-read", daemon=True).start()
    return done


class KeySource:
    """Holds the live key; `watch()` keeps it in step with the file."""

    def __init__(self, key_file: Path, poll_interval: float, on_change: ReloadListener) -> None:
        self.key_file = key_file
        self.poll_interval = poll_interval
        self._on_change = on_change
        self._misses = 0
        self._reading: asyncio.Future[LiveKey | None] | None = None
        self.current: LiveKey | None = None

    async def load(self) -> None:
        """The first read, at start (off the loop, bounded like every later one)."""
        self.current = await self._read()
        self._on_change(self.current, "initial")

    def check(self) -> None:
        """Re-read the file once (synchronously) and adopt what changed."""
        self.adopt(read_key_file(self.key_file))

    def adopt(self, latest: LiveKey | None) -> None:
        """Take one read's result: a new key at once, a miss only the second time."""
        if latest is None:
            self._misses += 1
            if self.current is not None and self._misses >= 2:
                self.current = None
                self._on_change(None, "missing")
            return
        self._misses = 0
        if self.current is None or latest.value != self.current.value:
            self.current = latest
            self._on_change(latest, "reloaded")

    async def watch(self) -> None:
        """Poll forever; cancel the task to stop.

        At most one read is outstanding: while a stuck one has not returned, polls
        count as misses instead of starting more threads.
        """
        while True:
            await asyncio.sleep(self.poll_interval)
            with contextlib.suppress(Exception):  # a bad read must never kill the watcher
                await self._poll()

    async def _poll(self) -> None:
        self.adopt(await self._read())

    async def _read(self) -> LiveKey | None:
        """One read, bounded by READ_TIMEOUT; a stuck read counts as no key this time and
        is awaited again on the next poll rather than started anew."""
        if self._reading is None:
            self._reading = start_key_read(self.key_file)
        try:
            async with asyncio.timeout(READ_TIMEOUT):
                latest = await asyncio.shield(self._reading)
        except TimeoutError:
            return None
        self._reading = None
        return latest
