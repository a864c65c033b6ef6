"""The "Held streams" section of RESULTS.md, from bench/out/held.json.

Ratios and differences between targets are taken within one rep and N (the runs minutes
apart at most, under the same background load), then the median over reps is shown.
"""

import re
import statistics
from pathlib import Path
from typing import Any

DIRECT = "direct"
BARE = "bare passthrough (aiohttp)"
NGINX = "nginx (1 process)"
PROXY = "proxy"
BEFORE = "proxy (before)"
DEFAULTS = "proxy (default maxInFlight)"
HEADING = "## Held streams"
Result = dict[str, Any]


def med(values: list[float]) -> float:
    values = [v for v in values if v == v]  # drop NaN
    return statistics.median(values) if values else float("nan")


def cpu_us(r: Result) -> float:
    received = r["received"]
    return float(r["cpu_s"]["target"]) / received * 1e6 if received else float("nan")


def relayed(r: Result) -> float:
    return float(r["received"]) / float(r["sent"]) if r["sent"] else float("nan")


def kib_per_stream(r: Result) -> float:
    return float(r["rss_peak_kib"] - r["rss_idle_kib"]) / int(r["streams"])


def harness(r: Result) -> float:
    """Cores used by the upstream and the load generator together (both on CPU 0)."""
    return float(r["cpu_s"]["upstream"] + r["cpu_s"]["loadgen"]) / float(r["window_s"])


def failures(r: Result) -> int:
    return int(r["refused"] + r["cut"] + r["lost"] + r["reordered"] + r["connect_errors"])


def line(rep: int, name: str, r: Result) -> str:
    return (
        f"held rep {rep} N={r['streams']:<5} {name:<28} relayed {relayed(r):6.1%} "
        f"cpu {cpu_us(r):6.1f} us/chunk p50 {r['p50_ms']:7.2f} p99 {r['p99_ms']:8.2f} ms "
        f"KiB/stream {kib_per_stream(r):6.1f} failures {failures(r)} "
        f"(refused {r['refused']}) harness {harness(r):.2f} cores "
        f"target {r['cpu_s']['target'] / r['window_s']:.2f} cores"
    )


class Held:
    def __init__(self, raw: dict[str, Any]) -> None:
        self.raw = raw
        self.runs: dict[str, list[Result]] = raw["runs"]

    def names(self, n: int) -> list[str]:
        order = [DIRECT, BARE, NGINX, PROXY, BEFORE, DEFAULTS]
        return [name for name in order if f"{name}|{n}" in self.runs]

    def of(self, name: str, n: int) -> list[Result]:
        return self.runs.get(f"{name}|{n}", [])

    def added(self, name: str, n: int, key: str) -> float:
        pairs = zip(self.of(name, n), self.of(DIRECT, n), strict=False)
        return med([a[key] - d[key] for a, d in pairs])

    def ratio_cpu(self, name: str, other: str, n: int) -> float:
        pairs = zip(self.of(name, n), self.of(other, n), strict=False)
        return med([cpu_us(a) / cpu_us(b) for a, b in pairs if cpu_us(b)])


def table(h: Held, n: int) -> list[str]:
    rows = [
        f"### N = {n} streams held at once ({n * 25:,} chunks/s offered)",
        "",
        "| target | relayed | CPU µs/chunk | x nginx | p50 ms | p99 ms | added p50 | added p99 "
        "| KiB/held stream | refused | cut | lost | reordered | target cores | harness cores "
        "| CPU 0 busy | CPU 1 busy |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name in h.names(n):
        runs = h.of(name, n)
        direct = name == DIRECT
        cpu = "-" if direct else f"{med([cpu_us(r) for r in runs]):.1f}"
        x_nginx = "-" if direct or not h.of(NGINX, n) else f"{h.ratio_cpu(name, NGINX, n):.2f}x"
        added = ("-", "-") if direct else (
            f"{h.added(name, n, 'p50_ms'):+.2f}", f"{h.added(name, n, 'p99_ms'):+.2f}")  # fmt: skip
        kib = "-" if direct else f"{med([kib_per_stream(r) for r in runs]):.1f}"
        window = runs[0]["window_s"]
        used = med([r["cpu_s"]["target"] / window for r in runs])
        target_cores = "-" if direct else f"{used:.2f}"
        rows.append(
            f"| {name} | {med([relayed(r) for r in runs]):.1%} | {cpu} | {x_nginx} "
            f"| {med([r['p50_ms'] for r in runs]):.2f} | {med([r['p99_ms'] for r in runs]):.2f} "
            f"| {added[0]} | {added[1]} | {kib} "
            f"| {sum(r['refused'] for r in runs)} | {sum(r['cut'] for r in runs)} "
            f"| {sum(r['lost'] for r in runs)} | {sum(r['reordered'] for r in runs)} "
            f"| {target_cores} | {med([harness(r) for r in runs]):.2f} "
            f"| {med([r['cpu_s']['cpu0 busy'] / window for r in runs]):.2f} "
            f"| {med([r['cpu_s'].get('cpu1 busy', 0) / window for r in runs]):.2f} |"
        )
    return [*rows, ""]


GOAL_STREAMS = 1000  # the goals are for this N (the largest measured, if it is not)


def goals(h: Held) -> list[str]:
    streams = h.raw["streams"]
    n = GOAL_STREAMS if GOAL_STREAMS in streams else max(streams)
    if not h.of(PROXY, n) or not h.of(NGINX, n):
        return []
    runs = h.of(PROXY, n)
    share = med([relayed(r) for r in runs])
    fails = sum(failures(r) for r in runs)
    x = h.ratio_cpu(PROXY, NGINX, n)
    p99 = h.added(PROXY, n, "p99_ms")
    kib = med([kib_per_stream(r) for r in runs])
    # The default-maxInFlight row runs at the largest N only: holding more holds N too.
    held = [m for m in streams if m >= n and h.of(DEFAULTS, m)]
    defaults = h.of(DEFAULTS, held[0]) if held else []
    refused = sum(r["refused"] for r in defaults)

    def ok(flag: bool) -> str:
        return "met" if flag else "**not met**"

    rows = [
        f"| goal at N={n} (proxy, 1 worker) | target | measured | |",
        "|---|---|---|---|",
        f"| relayed, no failures | ≥ 97%, 0 | {share:.1%}, {fails} "
        f"| {ok(share >= 0.97 and not fails)} |",
        f"| CPU per chunk | ≤ 1.5x nginx | {x:.2f}x | {ok(x <= 1.5)} |",
        f"| added p99 chunk latency | ≤ 5 ms over direct | {p99:+.2f} ms | {ok(p99 <= 5)} |",
        f"| memory per held stream | ≤ 20 KiB | {kib:.1f} KiB | {ok(kib <= 20)} |",
    ]  # fmt: skip
    if defaults:
        rows.append(
            f"| default maxInFlight holds N | 0 refused | {refused} refused at N={held[0]} "
            f"| {ok(not refused)} |"
        )
    return [*rows, ""]


def render(raw: dict[str, Any]) -> str:
    h = Held(raw)
    timing = raw["timing"]
    loads = [r["load_average"] for runs in h.runs.values() for r in runs]
    commit = f" (commit {raw['before_commit']})" if raw.get("before_commit") else ""
    before = ""
    if raw.get("before"):
        before = f" `proxy (before)` is the proxy of {raw['before']}{commit}."
    lines = [
        HEADING,
        "",
        f"`python -m bench.held` (also run by `python -m bench`): {raw['machine']}. "
        f"Proxy measured: commit {raw['proxy_commit']}.{before}",
        "",
        f"N streamed chat completions held at once, each {raw['chunks']} chunks at "
        f"{1 / raw['delay']:.0f} chunks/s; the next completion starts on the same connection "
        f"when one ends, the first ones spread over {timing['ramp']} s. The upstream "
        "(`bench/upstream.py`, `stamp:1`) stamps every chunk with its send time "
        "(CLOCK_MONOTONIC) and the client (`bench/heldload.py`, httptools parser) takes arrival "
        f"minus send. Measured over a {timing['window']} s window after {timing['warmup']} s "
        f"of warm-up; {raw['reps']} reps, every target started fresh for each (rep, N), order "
        "rotated each rep; medians over reps, `added` = per-rep difference to direct, then the "
        "median. Relayed = chunks that arrived in the window / chunks the upstream sent in it. "
        "CPU/chunk = the target's process-tree CPU (/proc) over the window / chunks arrived. "
        "KiB/held stream = (peak summed VmRSS during the window - idle VmRSS of the fresh "
        "target) / N. Failures over the whole run: refused (non-200, e.g. 503), cut (closed "
        "mid-stream), lost (missing indices), reordered. Each target runs alone on CPU 1; the "
        "upstream and the load generator (the harness) share CPU 0; CPU n busy = everything on "
        "that core, other jobs of the shared machine included. The proxy rows run with "
        "maxInFlight 4096 except `proxy (default maxInFlight)`.",
        "",
        f"Load average during the runs: median {med(loads):.2f}, max {max(loads):.2f} "
        f"(2 cores, shared with other jobs); at the end {raw['load_average_end'][0]:.2f}.",
        "",
        *goals(h),
    ]
    for n in raw["streams"]:
        lines += table(h, n)
    return "\n".join(lines).rstrip("\n") + "\n"


_SECTION = re.compile(rf"^{re.escape(HEADING)}\n.*?(?=^## (?!#)|\Z)", re.S | re.M)


def section(text: str) -> str:
    """The held-streams section of a RESULTS.md text (to the next `## ` heading), or ""."""
    found = _SECTION.search(text)
    return found[0] if found else ""


def replace_section(path: Path, section: str) -> None:
    """Put `section` in place of the file's held-streams section (or append it)."""
    text = path.read_text() if path.exists() else ""
    if _SECTION.search(text):
        text = _SECTION.sub(lambda _: section + "\n", text, count=1)
    else:
        text = text.rstrip("\n") + ("\n\n" if text else "") + section
    path.write_text(text.rstrip("\n") + "\n")
