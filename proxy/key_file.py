"""The key file: what a usable key is, and the one way it is read off the caller's thread.

Every read of the mounted key file goes through `read_off_thread`: a daemon thread, not
an executor, so a read stuck in the kernel (a hung NFS mount) can neither freeze an
event loop nor keep the process from exiting. Its callers differ only in how they wait:
the start check and the supervisor's first read block for at most READ_TIMEOUT
(`read_key_file_blocking`), the event loop awaits a future (`start_key_read`), and the
supervisor's poll is woken through its selector (`read_off_thread` itself).
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

MAX_KEY_FILE_BYTES = 64 * 1024  # keys are < 1 KiB; a bigger "file" is not a key file
READ_TIMEOUT = 5.0  # a read that takes longer (hung mount) counts as a miss


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
    return key_text_verdict(text)


def key_text_verdict(text: str) -> LiveKey | str:
    """The key in `text` (a file's or a Secret entry's content), or why it is unusable."""
    value = text.strip()
    if not value:
        return "empty"
    if not value.isprintable() or " " in value:
        return "holds whitespace or control characters inside the key (two lines?)"
    return LiveKey.from_text(value)


def read_key_file(key_file: Path) -> LiveKey | None:
    """The key in `key_file`, or None when there is no usable one (`key_file_verdict`)."""
    verdict = key_file_verdict(key_file)
    return verdict if isinstance(verdict, LiveKey) else None


def read_off_thread(key_file: Path, deliver: Callable[[LiveKey | str], None]) -> None:
    """Read `key_file` on a daemon thread and hand its verdict to `deliver` (called on
    that thread). The one reader every caller waits on in its own way."""

    def read() -> None:
        deliver(key_file_verdict(key_file))

    threading.Thread(target=read, name="key-file-read", daemon=True).start()


def read_key_file_blocking(key_file: Path) -> LiveKey | str:
    """The verdict, waited for at most READ_TIMEOUT (a hung mount counts as a failed
    read), for callers without an event loop: the start check, the supervisor."""
    found: list[LiveKey | str] = []
    done = threading.Event()

    def deliver(verdict: LiveKey | str) -> None:
        found.append(verdict)
        done.set()

    read_off_thread(key_file, deliver)
    done.wait(READ_TIMEOUT)
    return found[0] if found else f"reading it took longer than {READ_TIMEOUT:g} s"


def key_problem_at_start(key_file: Path) -> str | None:
    """Why `key_file` holds no usable key right now (bounded like every read), or None."""
    verdict = read_key_file_blocking(key_file)
    return None if isinstance(verdict, LiveKey) else verdict


def start_key_read(key_file: Path) -> "asyncio.Future[LiveKey | None]":
    """The key (None when unusable) as a future of the running loop."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[LiveKey | None] = loop.create_future()

    def settle(verdict: LiveKey | str) -> None:
        if not done.done():
            done.set_result(verdict if isinstance(verdict, LiveKey) else None)

    def deliver(verdict: LiveKey | str) -> None:
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            loop.call_soon_threadsafe(settle, verdict)

    read_off_thread(key_file, deliver)
    return done
