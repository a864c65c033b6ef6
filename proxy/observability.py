"""What the proxy tells operators: a JSON line per call and Prometheus metrics.

Only request facts go in (path, model, status, timings, byte and token counts);
headers, bodies and the key never reach this module.
"""

import asyncio
import bisect
import itertools
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from json.encoder import encode_basestring_ascii as _quote  # json.dumps' own (C)
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)

from proxy import genai_metrics

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
_TTFB_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
_MAX_MODEL_LABELS = 64  # beyond this, unknown model names share the label "other"
_MAX_MODEL_LABEL_CHARS = 128  # real names are far shorter; a longer one is "other" too
_PRINTABLE = frozenset(map(chr, range(0x21, 0x7F)))
KEY_SOURCES = ("api", "file")
KEY_SOURCE_HELP = (
    "1 for where the served key comes from: api (the Secret watch) or file (the mount)."
)
# One call's token count is clamped here: an upstream (or a man in the middle of an
# http:// upstream) reporting a 400-digit count must not break the float exposition.
MAX_CALL_TOKENS = 10**9
# Logged request text is cut so a call line stays one atomic write (< PIPE_BUF) even
# when every character needs a 12-byte \uXXXX\uXXXX escape.
MAX_LOGGED_PATH = 200
MAX_LOGGED_METHOD = 16


def clamp_tokens(count: int | None) -> int | None:
    """A reported token count, bounded to what one call can plausibly use."""
    return None if count is None else max(0, min(count, MAX_CALL_TOKENS))


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


@dataclass(slots=True)
class CallRecord:
    """Facts about one /v1 call, filled in along the request path."""

    method: str
    path: str
    label: str  # the metric `path` label, from the fixed table in proxy.routes
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
    buffered: int = 0  # body bytes reserved in the buffer budget, given back at the end
    client: str | None = None  # identity on: the app's name, `anonymous` or `ns/sa` (log)
    client_label: str | None = None  # ... bounded for metrics: names, anonymous, other
    needs_usage: bool = False  # the caller has a token budget: a stream must report usage
    hide_usage: bool = False  # the proxy asked for stream usage the client did not ask for
    # What the upstream did: its HTTP status, or timeout / unreachable / bad_response when
    # it gave no usable answer; None when the call never went upstream (refused here).
    upstream: str | None = None


class _Histogram:
    """Bucket counts for one label set; `le` semantics as Prometheus defines them."""

    __slots__ = ("bounds", "count", "counts", "total")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.total = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.total += value
        self.count += 1

    def state(self) -> list[float]:
        """Bucket counts, then the sum, then the count: what merging workers adds up."""
        return [*self.counts, self.total, self.count]


class Metrics:
    """Prometheus metrics, on a registry of their own (one per app).

    The per-call series are plain dicts and ints updated on the request path and
    turned into metric families only when /metrics is scraped: no locks, label
    lookups or sample objects per call. The rare key events use ordinary
    prometheus-client metrics.
    """

    def __init__(self, allowed_models: tuple[str, ...] = ()) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.key_reloads = Counter(
            "llm_proxy_key_reloads",
            "Key file changes seen, by result.",
            ["result"],
            registry=self.registry,
        )
        self.key_loaded = Gauge(
            "llm_proxy_key_loaded", "1 while a key is loaded.", registry=self.registry
        )
        self.key_source = Gauge(
            "llm_proxy_key_source",
            KEY_SOURCE_HELP,
            ["source"],
            registry=self.registry,
        )
        self.set_key_source("none")
        self.in_flight_source: Callable[[], int] = lambda: 0
        self._requests: dict[tuple[str, str, str], int] = {}
        self._latency: dict[str, _Histogram] = {}
        self._ttfb: dict[str, _Histogram] = {}
        self._tokens: dict[tuple[str, str], int] = {}
        # Identity on: calls and tokens per app (labels bounded by proxy.identity).
        self._client_requests: dict[tuple[str, str], int] = {}
        self._client_tokens: dict[tuple[str, str], int] = {}
        # The series alerts divide by start at 0, so their first increments count in rate():
        # a counter first scraped at 3 shows no increase until it moves again.
        self._upstream: dict[str, int] = {"401": 0, "403": 0}
        self._refusals: dict[str, int] = {"proxy_overloaded": 0}
        self._genai = genai_metrics.GenAiSeries()
        # The served key's fingerprint (non-secret), as the label of llm_proxy_key_info.
        self.key_fingerprint: str | None = None
        # Allowed models always have their label; other names earn one only when the
        # upstream accepted them (2xx), so refused or junk names cannot use up the slots.
        self._models: set[str] = {m for m in allowed_models if _labelable(m)}
        self._free_slots = _MAX_MODEL_LABELS
        self.registry.register(self)  # a Collector: anything with collect()

    def set_key_source(self, source: str) -> None:
        """1 for the source the served key comes from ("api" or "file"), 0 for the other."""
        for name in KEY_SOURCES:
            self.key_source.labels(name).set(1 if name == source else 0)

    def model_label(self, model: str | None, accepted: bool = True) -> str:
        if model is None:
            return ""
        if model in self._models:
            return model
        if accepted and self._free_slots > 0 and _labelable(model):
            self._free_slots -= 1
            self._models.add(model)
            return model
        return "other"

    def record(self, call: CallRecord, duration: float) -> None:
        path = call.label
        model = self.model_label(call.model, 200 <= call.status < 300)
        key = (model, path, str(call.status))
        self._requests[key] = self._requests.get(key, 0) + 1
        latency = self._latency.get(path)
        if latency is None:
            latency = self._latency[path] = _Histogram(_LATENCY_BUCKETS)
        latency.observe(duration)
        if call.streamed and call.ttfb is not None:
            ttfb = self._ttfb.get(path)
            if ttfb is None:
                ttfb = self._ttfb[path] = _Histogram(_TTFB_BUCKETS)
            ttfb.observe(call.ttfb)
        prompt = clamp_tokens(call.prompt_tokens)
        completion = clamp_tokens(call.completion_tokens)
        if prompt:
            self._add_tokens(model, "prompt", prompt)
        if completion:
            self._add_tokens(model, "completion", completion)
        if call.upstream is not None:
            self._upstream[call.upstream] = self._upstream.get(call.upstream, 0) + 1
        elif call.error is not None:
            self._refusals[call.error] = self._refusals.get(call.error, 0) + 1
        operation = genai_metrics.OPERATIONS.get(path)
        if operation is not None:
            ttft = call.ttfb if call.streamed else None
            tokens = (prompt, completion)
            self._genai.record(operation, model, call.status, call.error, duration, ttft, tokens)
        if call.client_label is not None:
            self._record_client(call, call.client_label)

    def _record_client(self, call: CallRecord, client: str) -> None:
        key = (client, str(call.status))
        self._client_requests[key] = self._client_requests.get(key, 0) + 1
        tokens = self._client_tokens
        reported = (("prompt", call.prompt_tokens), ("completion", call.completion_tokens))
        for kind, value in reported:
            if count := clamp_tokens(value):
                tokens[(client, kind)] = tokens.get((client, kind), 0) + count

    def _add_tokens(self, model: str, kind: str, count: int) -> None:
        self._tokens[(model, kind)] = self._tokens.get((model, kind), 0) + count

    def snapshot(self) -> "Snapshot":
        """This process's per-call series as plain JSON-able data (for merging workers)."""
        return {
            "requests": [[*labels, value] for labels, value in self._requests.items()],
            "latency": {path: h.state() for path, h in self._latency.items()},
            "ttfb": {path: h.state() for path, h in self._ttfb.items()},
            "tokens": [[*labels, value] for labels, value in self._tokens.items()],
            "in_flight": self.in_flight_source(),
            "client_requests": [[*labels, v] for labels, v in self._client_requests.items()],
            "client_tokens": [[*labels, v] for labels, v in self._client_tokens.items()],
            "upstream": [[status, value] for status, value in self._upstream.items()],
            "refusals": [[code, value] for code, value in self._refusals.items()],
            **self._genai.snapshot(),
        }

    def collect(self) -> Iterator[Metric]:
        """Called by the registry at scrape time."""
        yield from call_families([self.snapshot()])
        yield key_info_family(self.key_fingerprint)


Snapshot = dict[str, Any]


def call_families(snapshots: list[Snapshot]) -> Iterator[Metric]:
    """The per-call metric families, summed over one snapshot per worker."""
    requests_total: dict[tuple[str, ...], int] = {}
    tokens_total: dict[tuple[str, ...], int] = {}
    histograms: dict[str, dict[str, list[float]]] = {"latency": {}, "ttfb": {}}
    for snapshot in snapshots:
        for *labels, value in snapshot["requests"]:
            requests_total[tuple(labels)] = requests_total.get(tuple(labels), 0) + value
        for *labels, value in snapshot["tokens"]:
            tokens_total[tuple(labels)] = tokens_total.get(tuple(labels), 0) + value
        for kind, merged in histograms.items():
            for path, state in snapshot[kind].items():
                known = merged.get(path)
                merged[path] = (
                    state if known is None else [a + b for a, b in zip(known, state, strict=True)]
                )
    requests = CounterMetricFamily(
        "llm_proxy_requests",
        "Calls by model, path and status.",
        labels=["model", "path", "status"],
    )
    for labels, value in requests_total.items():
        requests.add_metric(list(labels), value)
    yield requests
    for kind, name, text, bounds in (
        ("latency", "llm_proxy_request_duration_seconds", "Whole-call latency.", _LATENCY_BUCKETS),
        (
            "ttfb",
            "llm_proxy_stream_time_to_first_byte_seconds",
            "Streams: time from request to the first body chunk sent to the client.",
            _TTFB_BUCKETS,
        ),
    ):
        family = HistogramMetricFamily(name, text, labels=["path"])
        for path, state in histograms[kind].items():
            family.add_metric([path], _buckets(bounds, state[:-2]), state[-2])
        yield family
    tokens = CounterMetricFamily(
        "llm_proxy_tokens",
        "Tokens the upstream reported, by model and kind.",
        labels=["model", "kind"],
    )
    for model_kind, value in tokens_total.items():
        tokens.add_metric(list(model_kind), value)
    yield tokens
    yield GaugeMetricFamily(
        "llm_proxy_in_flight",
        "Calls being served now.",
        value=sum(snapshot["in_flight"] for snapshot in snapshots),
    )
    yield _counter_family(
        snapshots,
        "upstream",
        "llm_proxy_upstream_requests",
        "Calls sent upstream, by the upstream's HTTP status (or timeout, unreachable, "
        "bad_response when it gave no usable answer).",
        "status",
    )
    yield _counter_family(
        snapshots,
        "refusals",
        "llm_proxy_refusals",
        "Calls the proxy answered itself without the upstream, by error code "
        "(proxy_overloaded, key_unavailable, model_not_allowed, client_disconnected, ...).",
        "code",
    )
    yield from genai_metrics.families(snapshots)
    yield from _client_families(snapshots)


def _client_families(snapshots: list[Snapshot]) -> Iterator[Metric]:
    """Per-app series (identity on); separate families, so the per-model ones keep their
    cardinality and their labels."""
    for key, name, text, labels in (
        ("client_requests", "llm_proxy_client_requests", "Calls by app and status.", "status"),
        ("client_tokens", "llm_proxy_client_tokens", "Tokens by app and kind.", "kind"),
    ):
        totals: dict[tuple[str, ...], int] = {}
        for snapshot in snapshots:
            for *label_values, value in snapshot.get(key, ()):
                totals[tuple(label_values)] = totals.get(tuple(label_values), 0) + value
        if not totals:
            continue
        family = CounterMetricFamily(name, text, labels=["client", labels])
        for label_values, value in totals.items():
            family.add_metric(list(label_values), value)
        yield family


def _counter_family(
    snapshots: list[Snapshot], key: str, name: str, text: str, label: str
) -> Metric:
    """One single-label counter summed over the workers' snapshots. The upstream one keeps
    what the upstream answered apart from what the proxy refused itself: the share of
    401/403 there is the signature of a key the upstream rejects."""
    merged: dict[str, int] = {}
    for snapshot in snapshots:
        for value_label, value in snapshot.get(key, ()):
            merged[value_label] = merged.get(value_label, 0) + value
    family = CounterMetricFamily(name, text, labels=[label])
    for value_label, value in merged.items():
        family.add_metric([value_label], value)
    return family


def key_info_family(fingerprint: str | None) -> Metric:
    """llm_proxy_key_info{fingerprint="…"} 1 while a key is loaded (no sample otherwise):
    the non-secret fingerprint, so pods serving different keys show up in one query."""
    family = InfoMetricFamily("llm_proxy_key", "The served key's fingerprint (SHA-256, 12 hex).")
    if fingerprint is not None:
        family.add_metric([], {"fingerprint": fingerprint})
    return family


def key_families(
    loaded: bool, reloads: dict[str, int], fingerprint: str | None = None, source: str = "none"
) -> Iterator[Metric]:
    """The key metrics as the supervisor of several workers reports them."""
    family = GaugeMetricFamily("llm_proxy_key_source", KEY_SOURCE_HELP, labels=["source"])
    for name in KEY_SOURCES:
        family.add_metric([name], 1 if name == source else 0)
    yield family
    counter = CounterMetricFamily(
        "llm_proxy_key_reloads", "Key file changes seen, by result.", labels=["result"]
    )
    for result, value in reloads.items():
        counter.add_metric([result], value)
    yield counter
    yield GaugeMetricFamily("llm_proxy_key_loaded", "1 while a key is loaded.", value=int(loaded))
    yield key_info_family(fingerprint)


def _buckets(bounds: tuple[float, ...], counts: list[float]) -> list[tuple[str, float]]:
    cumulative = list(itertools.accumulate(counts))
    edges = [*(repr(float(b)) for b in bounds), "+Inf"]
    return list(zip(edges, map(float, cumulative), strict=True))


def _labelable(model: str) -> bool:
    """Short printable ASCII only: any other text could break or bloat the exposition."""
    return len(model) <= _MAX_MODEL_LABEL_CHARS and _PRINTABLE.issuperset(model)


class LogStream(Protocol):
    """Where the log goes: a text stream (stdout's batch writer, or a StringIO in tests)."""

    def write(self, text: str, /) -> int: ...

    def flush(self) -> None: ...


class EventLog:
    """JSON lines to a stream (stdout in the pod): one per call, one per key event.

    Call lines are flushed at most every FLUSH_SECONDS rather than once per line, so a
    busy proxy pays one write(2) per batch, not per call (stdout is a
    logstream.LineBatchWriter, which holds lines until flushed); other events flush at
    once. `flush()` at shutdown keeps the last lines; a SIGKILL can lose at most that
    interval of log.
    """

    FLUSH_SECONDS = 0.05

    def __init__(self, stream: LogStream) -> None:
        self._stream = stream
        self._flush_pending = False
        self._second = -1
        self._stamp = ""

    def write(self, fields: dict[str, object]) -> None:
        self.write_line(json.dumps(fields, separators=(",", ":")))

    def write_line(self, line: str) -> None:
        """One finished JSON line; the flush is scheduled once per batch."""
        self._stream.write(line + "\n")
        if self._flush_pending:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.flush()
            return
        self._flush_pending = True
        loop.call_later(self.FLUSH_SECONDS, self.flush)

    def event(self, name: str, **fields: object) -> None:
        """A line that is not a call (key changes, start, drain, stop), timestamped alike.

        Sent at once: these are rare, and operators and probes wait for some of them.
        """
        self.write({"time": self._now(), "event": name, **fields})
        self.flush()

    def flush(self) -> None:
        self._flush_pending = False
        self._stream.flush()

    def _now(self) -> str:
        """UTC time to the second, formatted once per second rather than per line."""
        second = int(time.time())
        if second != self._second:
            self._second = second
            self._stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(second))
        return self._stamp

    def call(self, call: CallRecord, duration: float) -> None:
        """The access-log line, formatted directly: the same JSON `json.dumps` gives.

        Strings go through the C escaper json.dumps itself uses; numbers are ints or
        finite floats, whose repr is their JSON form.
        """
        model = call.model
        line = (
            f'{{"time":"{self._now()}","event":"call",'
            f'"method":{_quote(_cut(call.method, MAX_LOGGED_METHOD))},'
            f'"path":{_quote(_cut(call.path, MAX_LOGGED_PATH))},'
            f'"model":{"null" if model is None else _quote(model)},'
            f'"status":{call.status},"durationMs":{round(duration * 1000, 2)!r},'
            f'"streamed":{"true" if call.streamed else "false"},'
            f'"bytesIn":{call.bytes_in},"bytesOut":{call.bytes_out}'
        )
        if call.ttfb is not None:
            line += f',"ttfbMs":{round(call.ttfb * 1000, 2)!r}'
        if call.prompt_tokens is not None:
            line += f',"promptTokens":{clamp_tokens(call.prompt_tokens)}'
        if call.completion_tokens is not None:
            line += f',"completionTokens":{clamp_tokens(call.completion_tokens)}'
        if call.error is not None:
            line += f',"error":{_quote(_cut(call.error, 128))}'
        if call.client is not None:
            line += f',"client":{_quote(call.client)}'
        self.write_line(line + "}")
