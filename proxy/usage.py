"""Token usage from the last `"usage": {...}` of a response body, JSON or SSE alike.

OpenAI puts `usage` near the end: last key of a chat/embeddings/responses body,
the final chunk of a chat stream (only when the client set
`stream_options.include_usage`), inside `response.completed` for a Responses
stream. The proxy does not keep the end of every body to find it: `UsageTail` looks
for the key in each chunk as it passes (bytes.find, in C) and keeps only the bytes
from the last object-valued `"usage"` to the end of its counts' range, ~1 KiB, and
only once one has been seen. A thousand held streams then hold a few bytes each.
"""

import re

TAIL_BYTES = 8192  # an undecided `"usage"` followed by more whitespace than this: no object
COUNT_SPAN = 1024  # the counts are read within this many bytes after the object's `{`
KEY = b'"usage"'
_SPLIT = len(KEY) - 1  # a key cut in two leaves at most this much of it in one chunk

_USAGE = re.compile(rb'"usage"\s*:\s*\{')
_UNDECIDED = re.compile(rb'"usage"\s*(?::\s*)?')
_COUNT = re.compile(rb'"(prompt_tokens|completion_tokens|input_tokens|output_tokens)"\s*:\s*(\d+)')


class UsageTail:
    """The body's last object-valued `"usage"` and the bytes after it, fed chunk by chunk.

    `tokens()` equals `parse_usage(whole body)` (up to TAIL_BYTES of whitespace inside
    `"usage" : {`). Each occurrence of the key opens a window (bytes from the key on);
    a window is decided once its value starts: an object makes it the best window,
    anything else drops it. The best window grows until it holds COUNT_SPAN bytes past
    its `{`. `_edge` keeps the last bytes of the previous chunk, for a key cut in two.
    """

    __slots__ = ("_best", "_edge", "_open")

    def __init__(self) -> None:
        self._best: bytearray | None = None
        self._open: list[bytearray] = []  # undecided windows, and the best one until full
        self._edge = b""

    def feed(self, chunk: bytes) -> None:
        if not chunk:
            return
        if self._open:
            self._grow(chunk)
        edge = self._edge
        if edge:  # a key that starts in the previous chunk and ends in this one
            joined = edge + chunk[:_SPLIT]
            at = joined.find(KEY)
            while 0 <= at < len(edge):
                self._add(bytearray(edge[at:]) + chunk[:TAIL_BYTES])
                at = joined.find(KEY, at + 1)
        at = chunk.find(KEY)
        while at >= 0:
            self._add(bytearray(memoryview(chunk)[at : at + TAIL_BYTES]))
            at = chunk.find(KEY, at + 1)
        # The next chunk may finish a key begun here: keep the end of the stream from its
        # first quote among the last _SPLIT bytes (usually none: an SSE event ends `}\n\n`).
        if len(chunk) < _SPLIT:
            chunk = (edge + chunk)[-_SPLIT:]
        quote = chunk.find(b'"', max(0, len(chunk) - _SPLIT))
        self._edge = chunk[quote:] if quote >= 0 else b""

    def _grow(self, chunk: bytes) -> None:
        windows, self._open = self._open, []
        for window in windows:
            window += chunk[: max(0, self._cap(window) - len(window))]
            self._add(window, new=False)

    def _cap(self, window: bytearray) -> int:
        found = _USAGE.match(window)
        return found.end() + COUNT_SPAN if found is not None else TAIL_BYTES

    def _add(self, window: bytearray, new: bool = True) -> None:
        """Decide a window: best (kept while growing), undecided (kept) or dropped."""
        found = _USAGE.match(window)
        if found is not None:
            if new or window is not self._best:
                self._open = [w for w in self._open if w is not self._best]
            self._best = window
            if len(window) < found.end() + COUNT_SPAN:
                self._open.append(window)
            else:
                del window[found.end() + COUNT_SPAN :]
        elif len(window) < TAIL_BYTES and _UNDECIDED.fullmatch(window):
            self._open.append(window)

    def tokens(self) -> tuple[int | None, int | None]:
        """(prompt, completion) from the last `"usage": {...}` fed, if any."""
        return parse_usage(self._best) if self._best is not None else (None, None)


def parse_usage(body: bytes | bytearray) -> tuple[int | None, int | None]:
    # The last `"usage": {`, found backwards from the end with bytes.rfind.
    end = len(body)
    while True:
        at = body.rfind(b'"usage"', 0, end)
        if at < 0:
            return None, None
        last = _USAGE.match(body, at)
        if last is not None:
            break
        end = at + 6  # the next search may find a start just before this one
    prompt: int | None = None
    completion: int | None = None
    # The usage object is small; its counts come before any nested detail objects end.
    for name, value in _COUNT.findall(body, last.end(), last.end() + COUNT_SPAN):
        if name in (b"prompt_tokens", b"input_tokens") and prompt is None:
            prompt = int(value)
        elif name in (b"completion_tokens", b"output_tokens") and completion is None:
            completion = int(value)
    return prompt, completion
