"""The provider key: from the mounted Secret file, or a watch on the Secret through the
Kubernetes API with the file as the fallback, and kept current.

File: a poll task re-reads the file every `poll_interval` seconds instead of the
request path touching the filesystem. Reading through the path follows the
kubelet's `apiKey -> ..data/apiKey` symlinks, so the atomic `..data` swap is seen
as a plain content change. A new non-empty key is adopted at once; a missing or
empty file only drops the key after two reads in a row, so a writer that
truncates before writing never causes a failed request. Requests read
`current` (an attribute), which is always either the old or the new key.

API (`key_source=api`, proxy.secret_watch): the watch delivers the Secret's key
within a moment of its update, where the kubelet refreshes the file only at its
next pod sync (about a minute). The file is still read and served when the watch
has not listed the Secret yet (API unreachable at start), has been broken for
longer than `api_grace` seconds, or says the Secret holds no key: the proxy never
serves no key while either source has one.
"""

import asyncio
import contextlib
import time
from collections.abc import Callable
from pathlib import Path

from proxy.key_file import READ_TIMEOUT, LiveKey, read_key_file, start_key_read
from proxy.secret_watch import SecretWatch, WatchTarget

ReloadListener = Callable[[LiveKey | None, str], None]
# (served source: "api" | "file" | "none", why in a few words): for the log and the metric.
SourceListener = Callable[[str, str], None]


class KeySource:
    """Holds the live key; `watch()` keeps it in step with the file (and the API watch).

    `current` is what requests use. With an API watch (`api` given, see
    proxy.secret_watch), `current` is the watch's key while the watch is sound, else
    the file's; `source` says which ("api", "file", or "none" without a key) and
    `api_status` how the watch is doing, for /readyz and the metrics.
    """

    def __init__(
        self,
        key_file: Path,
        poll_interval: float,
        on_change: ReloadListener,
        *,
        api: WatchTarget | str | None = None,
        api_grace: float = 30.0,
        on_source: SourceListener | None = None,
    ) -> None:
        """`api`: where to watch the Secret, or why that is impossible here (the file is
        then served and /readyz says why); None for the file alone."""
        self.key_file = key_file
        self.poll_interval = poll_interval
        self._on_change = on_change
        self._on_source = on_source or (lambda source, why: None)
        self._misses = 0
        self._reading: asyncio.Future[LiveKey | None] | None = None
        self.current: LiveKey | None = None
        self.api_target = api if not isinstance(api, str) else None
        self.api_grace = api_grace
        self.uses_api = api is not None
        self.source = "none"
        self.api_status = "off" if api is None else "connecting"
        if isinstance(api, str):
            self.api_status = f"unavailable: {api}"
        self._file_key: LiveKey | None = None
        self._api_key: LiveKey | None = None
        self._api_listed = False  # the watch has read the Secret at least once
        self._api_broken_since: float | None = None

    async def load(self) -> None:
        """The first read, at start (off the loop, bounded like every later one)."""
        self.begin(await self._read())

    def begin(self, first: LiveKey | None) -> None:
        """Serve the first file read's key (the API's, if any, follows)."""
        self._file_key = first
        self.current, source = self._choose()
        self._set_source(source)
        self._on_change(self.current, "initial")

    def check(self) -> None:
        """Re-read the file once (synchronously) and adopt what changed."""
        self.adopt(read_key_file(self.key_file))

    def adopt(self, latest: LiveKey | None) -> None:
        """Take one file read's result: a new key at once, a miss only the second time."""
        if latest is None:
            self._misses += 1
            if self._misses >= 2:
                self._file_key = None
        else:
            self._misses = 0
            self._file_key = latest
        self._serve()

    def adopt_api(self, latest: LiveKey | None, why: str) -> None:
        """The watch read the Secret: its usable key, or None (deleted, no entry, blank)."""
        self._api_key = latest
        self._api_listed = True
        self._api_broken_since = None
        self.api_status = "watching" if latest is not None else f"watching: {why}"
        self._serve()

    def api_broken(self, why: str) -> None:
        """The watch lost the API server (or was refused); `why` never holds the key."""
        if self._api_broken_since is None:
            self._api_broken_since = time.monotonic()
        self.api_status = f"broken: {why}"
        self._serve()

    def api_resumed(self) -> None:
        """The watch is connected again (its events follow)."""
        self._api_broken_since = None
        if self._api_listed:
            self.api_status = "watching" if self._api_key is not None else self.api_status
        self._serve()

    def _api_sound(self) -> bool:
        if not self._api_listed:
            return False
        broken = self._api_broken_since
        return broken is None or time.monotonic() - broken < self.api_grace

    def _choose(self) -> tuple[LiveKey | None, str]:
        """The key to serve and its source: the API's while the watch is sound, else the
        file's, else whatever key either source last had."""
        if self.uses_api and self._api_sound() and self._api_key is not None:
            return self._api_key, "api"
        if self._file_key is not None:
            return self._file_key, "file"
        if self.uses_api and self._api_key is not None:
            return self._api_key, "api"
        return None, "none"

    def _serve(self) -> None:
        key, source = self._choose()
        if key is None:
            if self.current is not None:
                self.current = None
                self._on_change(None, "missing")
        elif self.current is None or key.value != self.current.value:
            self.current = key
            self._on_change(key, "reloaded")
        self._set_source(source)

    def _set_source(self, source: str) -> None:
        if source != self.source:
            self.source = source
            self._on_source(source, self.api_status)

    async def watch(self) -> None:
        """Poll the file forever (and run the API watch beside it); cancel to stop.

        At most one read is outstanding: while a stuck one has not returned, polls
        count as misses instead of starting more threads.
        """
        api_task: asyncio.Task[None] | None = None
        if self.api_target is not None:
            api_task = asyncio.create_task(SecretWatch(self.api_target, self).run())
        try:
            while True:
                await asyncio.sleep(self.poll_interval)
                with contextlib.suppress(Exception):  # a bad read must never kill the watcher
                    await self._poll()
        finally:
            if api_task is not None:
                api_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await api_task

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
