"""The OpenTelemetry GenAI metrics, in the Prometheus form an OTel collector would export.

`gen_ai.client.token.usage`, `gen_ai.server.request.duration` and
`gen_ai.server.time_to_first_token` (semantic conventions, GenAI metrics) become
`gen_ai_client_token_usage`, `gen_ai_server_request_duration_seconds` and
`gen_ai_server_time_to_first_token_seconds`, with the conventions' attribute names
(dots as underscores) and their advised bucket boundaries, so dashboards written for
the conventions work on the proxy unchanged. Only the calls that run a model
(chat, text completion, embeddings, responses) are GenAI operations; the rest
(`/v1/models`, files, …) stay in the `llm_proxy_*` series only.

Like observability.Metrics, the per-call state is plain dicts of bucket counts,
turned into families at scrape time and mergeable across workers.
"""

import bisect
import itertools
from collections.abc import Iterator
from typing import Any

from prometheus_client.core import HistogramMetricFamily, Metric

# Path label (proxy.routes) → gen_ai.operation.name (well-known values where one fits).
OPERATIONS = {
    "/v1/chat/completions": "chat",
    "/v1/completions": "text_completion",
    "/v1/embeddings": "embeddings",
    "/v1/responses": "chat",
}
PROVIDER = "openai"  # gen_ai.provider.name: the API spoken upstream
TOKEN_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304,
                 16777216, 67108864)  # fmt: skip
DURATION_BUCKETS = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24,
                    20.48, 40.96, 81.92)  # fmt: skip
TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0,
                2.5, 5.0, 7.5, 10.0)  # fmt: skip

# snapshot key → (family name, help, label names after provider, bounds)
FAMILIES: dict[str, tuple[str, str, tuple[str, ...], tuple[float, ...]]] = {
    "genai_tokens": (
        "gen_ai_client_token_usage",
        "Tokens the upstream reported per call (OTel gen_ai.client.token.usage).",
        ("gen_ai_operation_name", "gen_ai_request_model", "gen_ai_token_type"),
        TOKEN_BUCKETS,
    ),
    "genai_duration": (
        "gen_ai_server_request_duration_seconds",
        "Whole-call duration of GenAI operations (OTel gen_ai.server.request.duration).",
        ("gen_ai_operation_name", "gen_ai_request_model", "error_type"),
        DURATION_BUCKETS,
    ),
    "genai_ttft": (
        "gen_ai_server_time_to_first_token_seconds",
        "Streams: time to the first body chunk sent (OTel gen_ai.server.time_to_first_token).",
        ("gen_ai_operation_name", "gen_ai_request_model"),
        TTFT_BUCKETS,
    ),
}

Histograms = dict[tuple[str, ...], list[float]]  # labels → bucket counts, sum, count


def observe(
    series: Histograms, bounds: tuple[float, ...], labels: tuple[str, ...], v: float
) -> None:
    """One observation into the (non-cumulative) bucket counts of `labels`."""
    state = series.get(labels)
    if state is None:
        state = series[labels] = [0.0] * (len(bounds) + 3)
    _add(state, bounds, v)


def _add(state: list[float], bounds: tuple[float, ...], v: float) -> None:
    state[bisect.bisect_left(bounds, v)] += 1  # `le`: a value on a bound is in its bucket
    state[-2] += v
    state[-1] += 1


class GenAiSeries:
    """The three histograms of one process. A successful call of a known (operation, model)
    costs one dict lookup: its four bucket lists are cached together, and are the very
    lists the per-family dicts hold."""

    __slots__ = ("_ok", "series")

    def __init__(self) -> None:
        self.series: dict[str, Histograms] = {key: {} for key in FAMILIES}
        self._ok: dict[tuple[str, str], tuple[list[float], ...]] = {}

    def _lists(self, operation: str, model: str) -> tuple[list[float], ...]:
        found = []
        for key, labels in (
            ("genai_duration", (operation, model, "")),
            ("genai_ttft", (operation, model)),
            ("genai_tokens", (operation, model, "input")),
            ("genai_tokens", (operation, model, "output")),
        ):
            series = self.series[key]
            state = series.get(labels)
            if state is None:
                state = series[labels] = [0.0] * (len(FAMILIES[key][3]) + 3)
            found.append(state)
        lists = self._ok[(operation, model)] = tuple(found)
        return lists

    def record(
        self,
        operation: str,
        model: str,
        status: int,
        error: str | None,
        duration: float,
        ttft: float | None,
        tokens: tuple[int | None, int | None],
    ) -> None:
        """One model call; `ttft` for streams only; `tokens` (input, output) when reported."""
        lists = self._ok.get((operation, model)) or self._lists(operation, model)
        if 200 <= status < 400:
            _add(lists[0], DURATION_BUCKETS, duration)
        else:
            labels = (operation, model, error_type(status, error))
            observe(self.series["genai_duration"], DURATION_BUCKETS, labels, duration)
        if ttft is not None:
            _add(lists[1], TTFT_BUCKETS, ttft)
        for state, count in zip(lists[2:], tokens, strict=True):
            if count is not None:
                _add(state, TOKEN_BUCKETS, count)

    def snapshot(self) -> dict[str, Any]:
        """JSON-able form for the worker merge: each histogram as [*labels, state]; label
        sets cached but never observed are left out."""
        return {
            key: [[*labels, state] for labels, state in self.series[key].items() if state[-1]]
            for key in FAMILIES
        }


def error_type(status: int, error: str | None) -> str:
    """error.type: the HTTP status of a failed call (the proxy's or the upstream's), else ''
    (an empty label is no label to Prometheus)."""
    if status >= 400 or status == 0:
        return str(status) if status else (error or "_OTHER")
    return ""


def families(snapshots: list[dict[str, Any]]) -> Iterator[Metric]:
    """The three GenAI histograms, summed over one snapshot per worker."""
    for key, (name, text, label_names, bounds) in FAMILIES.items():
        merged: Histograms = {}
        for snapshot in snapshots:
            for *labels, state in snapshot.get(key, ()):
                known = merged.get(tuple(labels))
                merged[tuple(labels)] = (
                    state if known is None else [a + b for a, b in zip(known, state, strict=True)]
                )
        family = HistogramMetricFamily(name, text, labels=["gen_ai_provider_name", *label_names])
        edges = [*(repr(float(bound)) for bound in bounds), "+Inf"]
        for labels, state in merged.items():
            cumulative = list(zip(edges, itertools.accumulate(state[:-2]), strict=True))
            family.add_metric([PROVIDER, *labels], cumulative, state[-2])
        yield family
