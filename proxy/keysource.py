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


def read_key_file(key_file: Path) -> LiveKey | None:
    """The key in `key_file`, or None when there is no usable one.

    Unusable: missing, unreadable, blank, or with inner whitespace or control
    characters (e.g. a second line), which no Authorization header can carry.
    """
    try:
        text = key_file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    value = text.strip()
    if not value or not value.isprintable() or " " in value:
        return None
    return LiveKey.from_text(value)


class KeySource:
    """Holds the live key; `watch()` keeps it in step with the file."""

    def __init__(self, key_file: Path, poll_interval: float, on_change: ReloadListener) -> None:
        self.key_file = key_file
        self.poll_interval = poll_interval
        self._on_change = on_change
        self._misses = 0
        self.current: LiveKey | None = read_key_file(key_file)
        on_change(self.current, "initial")

    def check(self) -> None:
        """Re-read the file once and adopt what changed (called by `watch`)."""
        latest = read_key_file(self.key_file)
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
        """Poll forever; cancel the task to stop."""
        while True:
            await asyncio.sleep(self.poll_interval)
            with contextlib.suppress(Exception):  # a bad read must never kill the watcher
                self.check()
