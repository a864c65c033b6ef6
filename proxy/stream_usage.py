"""Usage for streams whose client did not ask for it: asked for upstream, hidden from the client.

A chat or completions stream reports its token usage only when the request sets
`stream_options.include_usage`; a client with a token budget that streams without it
would be served uncharged. For such a call the proxy asks for usage itself
(`ask_for_usage`) and takes out of the stream what that changes (`UsageOnlyFilter`):
the extra usage-only event (`"choices": []` and a `usage` object) and the `"usage":
null` member every other event then carries. The client receives the events it
would have received without the option; the usage is counted from the upstream's
bytes before the filter.

The request body is decoded only for calls that can stream (a `"stream"` member,
possibly escaped, is present); it has already passed the JSON scanner's limits
(depth, containers). Bodies over THREAD_THRESHOLD are decoded on a worker thread. The
rewritten body has each key once (the last value, as Python's and Go's decoders read
duplicates), so the upstream reads exactly what the proxy decided on.
"""

import asyncio
import json
import re
from typing import Any

from proxy.observability import CallRecord
from proxy.policy.model_check import is_json_type

THREAD_THRESHOLD = 64 * 1024
STREAMED_ROUTES = frozenset({"/v1/chat/completions", "/v1/completions"})
# What lax upstreams (pydantic, as vLLM uses) take for true; OpenAI itself takes only true.
_TRUE_STRINGS = frozenset({"true", "1", "yes", "on", "t", "y"})
# An event is at most this large before it is passed on as it is, undecided.
MAX_EVENT_BYTES = 64 * 1024
_EVENT_END = re.compile(rb"\r\n\r\n|\n\n|\r\r")
# `"usage": null` as the last member of an event's object, the form OpenAI sends.
_NULL_USAGE_LAST = re.compile(rb',[ \t]*"usage"[ \t]*:[ \t]*null[ \t]*\}[ \t]*(\r?\n|\r)?$')
_DATA = re.compile(rb"^data:[ ]?(.*?)(\r?\n|\r)?$", re.DOTALL)


def _truthy(value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value == 1
    return isinstance(value, str) and value.strip().lower() in _TRUE_STRINGS


def _may_stream(body: bytes | bytearray) -> bool:
    """Cheap filter: a body with no `"stream` and no escape cannot name `stream`."""
    return b'"stream' in body or b"\\u" in body


def _rewrite(body: bytes | bytearray) -> bytes | None:
    """The body asking for usage, or None when it does not stream or already asks."""
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        return None  # the scanner accepted it; let the upstream answer whatever it is
    if not isinstance(document, dict) or not _truthy(document.get("stream")):
        return None
    options = document.get("stream_options")
    if isinstance(options, dict) and _truthy(options.get("include_usage")):
        return None
    document["stream_options"] = {
        **(options if isinstance(options, dict) else {}),
        "include_usage": True,
    }
    try:
        return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()
    except UnicodeEncodeError:  # a lone surrogate written as an escape: keep it escaped
        return json.dumps(document, separators=(",", ":")).encode()


async def ask_for_usage(body: bytes | bytearray) -> bytes | None:
    """For a JSON chat/completions body: the rewritten body if the proxy must add usage."""
    if not _may_stream(body):
        return None
    if len(body) < THREAD_THRESHOLD:
        return _rewrite(body)
    return await asyncio.to_thread(_rewrite, body)


async def with_usage(body: bytearray, call: CallRecord, label: str, content_type: str) -> bytearray:
    """The body to send for a caller whose streams must report usage (sets hide_usage)."""
    if label not in STREAMED_ROUTES or not is_json_type(content_type):
        return body
    rewritten = await ask_for_usage(body)
    if rewritten is None:
        return body
    call.hide_usage = True
    return bytearray(rewritten)


def _filtered(event: bytes) -> bytes:
    """One SSE event (with its blank-line end) as the client would have seen it."""
    if b'"usage"' not in event:
        return event
    lines = event.splitlines(keepends=True)
    out: list[bytes] = []
    for line in lines:
        found = _DATA.match(line)
        if found is None or b'"usage"' not in line:
            out.append(line)
            continue
        stripped = _NULL_USAGE_LAST.search(line)
        if stripped is not None:
            out.append(line[: stripped.start()] + b"}" + (stripped.group(1) or b""))
            continue
        payload, ending = found.group(1), found.group(2) or b""
        try:
            document: Any = json.loads(payload)
        except ValueError:
            out.append(line)
            continue
        if not isinstance(document, dict) or "usage" not in document:
            out.append(line)
        elif isinstance(document["usage"], dict) and document.get("choices") == []:
            return b""  # the usage-only event: the client did not ask for it
        elif document["usage"] is None:
            del document["usage"]
            text = json.dumps(document, ensure_ascii=False, separators=(",", ":"))
            out.append(b"data: " + text.encode("utf-8", "surrogatepass") + ending)
        else:
            out.append(line)
    return b"".join(out)


def _last_event_end(data: bytes) -> int:
    """Where the last complete event of `data` ends (0: none has ended yet)."""
    end = 0
    for separator in (b"\n\n", b"\r\n\r\n", b"\r\r"):
        at = data.rfind(separator)
        if at >= 0:
            end = max(end, at + len(separator))
    return end


class UsageOnlyFilter:
    """Takes the usage the proxy asked for out of an event stream, event by event.

    Complete events pass (filtered) as soon as their blank line arrives; the bytes of
    an event still arriving wait for the rest of it (a client cannot act on half an
    event), at most MAX_EVENT_BYTES, beyond which they pass unfiltered.
    """

    __slots__ = ("_held",)

    def __init__(self) -> None:
        self._held = b""

    def feed(self, data: bytes) -> bytes:
        held = self._held + data if self._held else data
        end = _last_event_end(held)
        if end == 0:
            if len(held) > MAX_EVENT_BYTES:
                self._held = b""
                return held
            self._held = held
            return b""
        self._held = held[end:]
        complete = held[:end]
        if b'"usage"' not in complete:
            return complete
        out = []
        start = 0
        for found in _EVENT_END.finditer(complete):
            out.append(_filtered(complete[start : found.end()]))
            start = found.end()
        return b"".join(out)

    def finish(self) -> bytes:
        """What is left at the end of the stream (an unterminated last event), filtered."""
        held, self._held = self._held, b""
        return _filtered(held) if held else b""
