"""Token usage from the tail of a response body, JSON or SSE alike.

OpenAI puts `usage` near the end: last key of a chat/embeddings/responses body,
the final chunk of a chat stream (only when the client set
`stream_options.include_usage`), inside `response.completed` for a Responses
stream. So the proxy keeps just the last few KiB of what it forwards and scans
them once at the end, instead of parsing every chunk on the hot path.
"""

import re

TAIL_BYTES = 8192

_USAGE = re.compile(rb'"usage"\s*:\s*\{')
_COUNT = re.compile(rb'"(prompt_tokens|completion_tokens|input_tokens|output_tokens)"\s*:\s*(\d+)')


class UsageTail:
    """A rolling window over the end of a body.

    Chunks are appended to one buffer that is trimmed back to TAIL_BYTES only once it
    holds twice that, so a stream of small chunks costs a copy of each chunk, not of
    the whole window per chunk.
    """

    __slots__ = ("_tail",)

    def __init__(self) -> None:
        self._tail: bytes | bytearray = b""

    def feed(self, chunk: bytes) -> None:
        if len(chunk) >= TAIL_BYTES:
            self._tail = chunk[-TAIL_BYTES:]
            return
        tail = self._tail
        if not tail:
            self._tail = bytes(chunk)  # one chunk (most non-streamed bodies): bytes, no copy
            return
        if isinstance(tail, bytes):
            tail = self._tail = bytearray(tail)
        tail += chunk
        if len(tail) > 2 * TAIL_BYTES:
            del tail[:-TAIL_BYTES]

    def tokens(self) -> tuple[int | None, int | None]:
        """(prompt, completion) from the last `"usage": {...}` in the tail, if any."""
        tail = self._tail
        return parse_usage(tail if len(tail) <= TAIL_BYTES else tail[-TAIL_BYTES:])


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
    for name, value in _COUNT.findall(body, last.end(), last.end() + 1024):
        if name in (b"prompt_tokens", b"input_tokens") and prompt is None:
            prompt = int(value)
        elif name in (b"completion_tokens", b"output_tokens") and completion is None:
            completion = int(value)
    return prompt, completion
