"""What the proxy tells operators: a JSON line per call and Prometheus metrics.

Only request facts go in (path, model, status, timings, byte and token counts);
headers, bodies and the key never reach this module.
"""

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any, TextIO

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
_TTFB_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
_MAX_MODEL_LABELS = 64  # beyond this, unknown model names share the label "other"


@dataclass(slots=True)
class CallRecord:
    """Facts about one /v1 call, filled in along the request path."""

    method: str
    path: str
    started: float = field(default_factory=time.perf_counter)
    model: str | None = None
    status: int = 0
    streamed: bool = False
    bytes_in: int = 0
    bytes_out: int = 0
    ttfb: float | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    error: str | None = None


def path_label(path: str) -> str:
    """A bounded metric label: `/v1` plus up to two id-free segments.

    `/v1/chat/completions` stays, `/v1/responses/resp_9x...` becomes `/v1/responses`.
    """
    parts = path.split("/")[2:4]  # ["", "v1", a, b, ...]
    kept = ["/v1"]
    for part in parts:
        if not part or any(ch.isdigit() for ch in part):
            break
        kept.append(part)
    return "/".join(kept)


class Metrics:
    """The Prometheus series, on a registry of their own (one per app)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "llm_proxy_requests",
            "Calls by model, path and status.",
            ["model", "path", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "llm_proxy_request_duration_seconds",
            "Whole-call latency.",
            ["path"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.ttfb = Histogram(
            "llm_proxy_stream_time_to_first_byte_seconds",
            "Streams: time from request to the first body chunk sent to the client.",
            ["path"],
            buckets=_TTFB_BUCKETS,
            registry=r,
        )
        self.tokens = Counter(
            "llm_proxy_tokens",
            "Tokens the upstream reported, by model and kind.",
            ["model", "kind"],
            registry=r,
        )
        self.in_flight = Gauge("llm_proxy_in_flight", "Calls being served now.", registry=r)
        self.key_reloads = Counter(
            "llm_proxy_key_reloads",
            "Key file changes seen, by result.",
            ["result"],
            registry=r,
        )
        self.key_loaded = Gauge("llm_proxy_key_loaded", "1 while a key is loaded.", registry=r)
        self._models: set[str] = set()
        # labels() takes a lock and builds a key each call; the set of label tuples
        # is small, so the proxy keeps the children it already resolved.
        self._per_call: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}
        self._children: dict[tuple[object, ...], Any] = {}

    def model_label(self, model: str | None) -> str:
        if model is None:
            return ""
        if model in self._models:
            return model
        if len(self._models) < _MAX_MODEL_LABELS:
            self._models.add(model)
            return model
        return "other"

    def record(self, call: CallRecord, duration: float) -> None:
        path = path_label(call.path)
        model = self.model_label(call.model)
        children = self._per_call.get((model, path, call.status))
        if children is None:
            children = (
                self.requests.labels(model, path, str(call.status)),
                self.latency.labels(path),
            )
            self._per_call[(model, path, call.status)] = children
        children[0].inc()
        children[1].observe(duration)
        if call.streamed and call.ttfb is not None:
            self._child(self.ttfb, (path,)).observe(call.ttfb)
        if call.prompt_tokens:
            self._child(self.tokens, (model, "prompt")).inc(call.prompt_tokens)
        if call.completion_tokens:
            self._child(self.tokens, (model, "completion")).inc(call.completion_tokens)

    def _child(self, parent: Counter | Histogram, labels: tuple[str, ...]) -> Any:
        key = (id(parent), *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = parent.labels(*labels)
        return child


class EventLog:
    """JSON lines to a stream (stdout in the pod): one per call, one per key event.

    Lines are flushed once per event-loop iteration rather than once per line, so
    a burst of calls finishing together costs one write(2), not one each.
    """

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._flush_pending = False

    def write(self, fields: dict[str, object]) -> None:
        self._stream.write(json.dumps(fields, separators=(",", ":")) + "\n")
        if self._flush_pending:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._stream.flush()
            return
        self._flush_pending = True
        loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_pending = False
        self._stream.flush()

    def call(self, call: CallRecord, duration: float) -> None:
        fields: dict[str, object] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + "Z",
            "event": "call",
            "method": call.method,
            "path": call.path,
            "model": call.model,
            "status": call.status,
            "durationMs": round(duration * 1000, 2),
            "streamed": call.streamed,
            "bytesIn": call.bytes_in,
            "bytesOut": call.bytes_out,
        }
        if call.ttfb is not None:
            fields["ttfbMs"] = round(call.ttfb * 1000, 2)
        if call.prompt_tokens is not None:
            fields["promptTokens"] = call.prompt_tokens
        if call.completion_tokens is not None:
            fields["completionTokens"] = call.completion_tokens
        if call.error is not None:
            fields["error"] = call.error
        self.write(fields)
