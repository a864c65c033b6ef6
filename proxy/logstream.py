"""Standard output for the JSON log, written in batches of whole lines.

The image sets PYTHONUNBUFFERED=1, which makes every `sys.stdout.write` a write(2):
one system call per access-log line. The proxy flushes its log itself (every
EventLog.FLUSH_SECONDS and at shutdown), so it writes through this instead: lines
collect in memory and leave together on flush. Each write(2) holds whole lines and
at most PIPE_BUF bytes, so lines from several worker processes sharing one stdout
pipe never interleave mid-line.
"""

import atexit
import os
import select

_ATOMIC_BYTES = getattr(select, "PIPE_BUF", 4096)  # a pipe write this small is atomic


class LineBatchWriter:
    """A minimal text stream over a file descriptor: `write` collects, `flush` sends."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._pending: list[str] = []
        atexit.register(self.flush)  # an unexpected exit still keeps what was logged

    def write(self, text: str) -> int:
        self._pending.append(text)
        return len(text)

    def flush(self) -> None:
        if not self._pending:
            return
        data = "".join(self._pending).encode("utf-8", "backslashreplace")
        self._pending.clear()
        start = 0
        while start < len(data):
            end = start + _ATOMIC_BYTES
            if end < len(data):
                cut = data.rfind(b"\n", start, end)
                end = cut + 1 if cut >= start else data.find(b"\n", end) + 1 or len(data)
            start += self._write_all(data[start:end])

    def _write_all(self, chunk: bytes) -> int:
        view = memoryview(chunk)
        while view:
            try:
                view = view[os.write(self._fd, view) :]
            except InterruptedError:
                continue
            except OSError:
                break  # stdout gone (closed pipe): nothing left to tell
        return len(chunk)
