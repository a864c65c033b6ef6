"""RESULTS.md from the raw numbers (bench/out/results.json), so a report can be re-rendered.

Every ratio between two targets is taken within one repetition (both measured
minutes apart at most, under the same background load) and the median of those
per-rep ratios is reported: the machine is shared, absolute rates drift.
"""

import statistics
from collections.abc import Callable
from typing import Any

PROXY = "proxy (full)"
IDENTITY = "proxy (full, identity require)"
BARE = "bare passthrough (aiohttp)"
NGINX = "nginx (1 process)"
DIRECT = "direct"
ONE_WORKER = "proxy, 1 worker"
TWO_WORKERS = "proxy, 2 workers"

Result = dict[str, Any]


def med(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def cpu_us(result: Result, group: str = "target") -> float:
    """CPU per request of one process group over one measured window, in us."""
    requests = result["requests"]
    return float(result["cpu_s"][group]) / requests * 1e6 if requests else float("nan")


def cores(result: Result, *groups: str) -> float:
    """CPUs' worth of time the groups used over the window (1.0 = one core flat out)."""
    return sum(float(result["cpu_s"][g]) for g in groups) / float(result["window_s"])


class Numbers:
    """Look-ups over the raw results: medians, and medians of per-rep ratios."""

    def __init__(self, raw: dict[str, Any]) -> None:
        self.raw = raw
        self.rates: dict[str, list[Result]] = raw["rates"]
        self.streams: dict[str, list[Result]] = raw["streams"]

    def has(self, name: str, c: int | None = None) -> bool:
        return f"{name}|c{c}" in self.rates if c is not None else name in self.streams

    def runs(self, name: str, c: int) -> list[Result]:
        return self.rates[f"{name}|c{c}"]

    def m(self, name: str, c: int, fn: Callable[[Result], float]) -> float:
        return med([fn(r) for r in self.runs(name, c)])

    def ratio(self, a: str, b: str, c: int, fn: Callable[[Result], float]) -> float:
        """Median over reps of fn(a's run) / fn(b's run), the runs of one rep paired."""
        pairs = zip(self.runs(a, c), self.runs(b, c), strict=False)
        return med([fn(x) / fn(y) for x, y in pairs if fn(y)])

    def diff(self, a: str, b: str, c: int, fn: Callable[[Result], float]) -> float:
        pairs = zip(self.runs(a, c), self.runs(b, c), strict=False)
        return med([fn(x) - fn(y) for x, y in pairs])

    def s(self, name: str, key: str) -> float:
        return med([float(r[key]) for r in self.streams[name]])

    def s_diff(self, a: str, b: str, key: str) -> float:
        pairs = zip(self.streams[a], self.streams[b], strict=False)
        return med([float(x[key]) - float(y[key]) for x, y in pairs])


def rate(r: Result) -> float:
    return float(r["rate"])


def ok(flag: bool) -> str:
    return "met" if flag else "**not met**"


def header(raw: dict[str, Any]) -> list[str]:
    args = raw["args"]
    return [
        "# Benchmark: llm-proxy vs a bare passthrough, nginx and the upstream called directly",
        "",
        f"Machine: {raw['machine']}.",
        "",
        f"Proxy measured: commit {raw.get('proxy_commit', 'unknown')}.",
        "",
        f"`python -m bench` (reps={args['reps']}, interleaved, order rotated each rep; "
        f"{args['duration']:g} s per rate run after 0.5 s warm-up). The fake upstream "
        "(`bench/upstream.py`, raw asyncio protocol, canned OpenAI bodies with usage) and the "
        "load generator (`bench/loadgen.py`, lean keep-alive HTTP/1.1 client) share CPU 0; "
        "every proxying target runs alone on CPU 1. Full proxy = access log to a file, "
        "metrics, model allowlist, token counting, key file watcher all on. Bare passthrough "
        "= an aiohttp server + aiohttp client copying requests and responses, no checks, log "
        "or metrics (`bench/passthrough.py`): the simplest thing that could work in Python. "
        "nginx = Debian's nginx, one process (`master_process off`), keep-alive upstream "
        "block, key set by `proxy_set_header`, `proxy_buffering off`, access log to a file; "
        "installed by the benchmark through `scripts/ensure-debian-packages.sh nginx` when "
        "missing (root only; the package's own service is never left running: this machine's "
        "policy-rc.d keeps it from starting, elsewhere the benchmark stops it by its pid file). "
        f"`{IDENTITY}` = the full proxy with `LLM_PROXY_IDENTITY_MODE=require` and one client "
        "with requests- and tokens-per-minute limits (checked and charged on every call, never "
        "reached); each request carries that client's ServiceAccount-shaped token (RS256 JWT), "
        "verified against the JWKS of a fake issuer on loopback (`bench/issuer.py`, CPU 0): "
        "the first call verifies the signature, later ones hit the proxy's token-hash cache, "
        "as an app reusing its projected token does.",
        "",
        "CPU per request = utime+stime from `/proc/<pid>/stat`, summed over the target's "
        "whole process tree, read at the start and end of the measured window, divided by "
        "the requests completed in that window. Ratios are medians of per-rep ratios.",
    ]


def rate_table(n: Numbers) -> list[str]:
    names: list[str] = n.raw["names"]
    bare = n.has(BARE, 16)
    lines = [
        "",
        "## Non-stream chat completions",
        "",
        "| target | c | req/s | req/s x bare | CPU us/req | CPU/req x bare | p50 ms | p99 ms "
        "| errors |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for c in (1, 16, 64):
        for name in names:
            if not n.has(name, c):
                continue
            errors = sum(int(r["errors"]) for r in n.runs(name, c))
            x_rate = f"{n.ratio(name, BARE, c, rate):.2f}" if bare else "-"
            if name == DIRECT:
                cpu = f"(upstream {n.m(name, c, lambda r: cpu_us(r, 'upstream')):.1f})"
                x_cpu = "-"
            else:
                cpu = f"{n.m(name, c, cpu_us):.1f}"
                x_cpu = f"{n.ratio(name, BARE, c, cpu_us):.2f}" if bare else "-"
            lines.append(
                f"| {name} | {c} | {n.m(name, c, rate):.0f} | {x_rate} | {cpu} | {x_cpu} | "
                f"{n.m(name, c, lambda r: r['p50_ms']):.2f} | "
                f"{n.m(name, c, lambda r: r['p99_ms']):.2f} | {errors} |"
            )
    return lines


def stream_table(n: Numbers) -> list[str]:
    args = n.raw["args"]
    lines = [
        "",
        f"## Streaming (concurrency 1, {args['streams']} streams of 20 chunks 2 ms apart)",
        "",
        "| target | TTFB p50 ms | TTFB p99 ms | + vs bare (p50, per-rep median) "
        "| reads per stream |",
        "|---|---:|---:|---:|---:|",
    ]
    for name in n.raw["names"]:
        if not n.has(name):
            continue
        added = f"{n.s_diff(name, BARE, 'ttfb_p50_ms'):+.2f}" if n.has(BARE) else "-"
        lines.append(
            f"| {name} | {n.s(name, 'ttfb_p50_ms'):.2f} | {n.s(name, 'ttfb_p99_ms'):.2f} | "
            f"{added} | {n.s(name, 'reads_median'):.0f} |"
        )
    return lines


def bottleneck_section(n: Numbers) -> list[str]:
    """Evidence that the proxy, not the upstream or the load generator, sets the pace."""
    lines = [
        "",
        "## Is the proxy the bottleneck?",
        "",
        "Cores used over each measured window (medians over reps; 1.00 = one core flat out). "
        "Target = its process tree (CPU 1); CPU 1 busy and CPU 0 busy = everything on that "
        "core, other jobs of the shared machine included (/proc/stat); upstream + load gen = "
        "their own processes (CPU 0).",
        "",
        "| target | c | req/s | target | CPU 1 busy | upstream + load gen | CPU 0 busy |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for c in (16, 64):
        for name in n.raw["names"]:
            if not n.has(name, c) or name in (ONE_WORKER, TWO_WORKERS):
                continue
            target = "-" if name == DIRECT else f"{n.m(name, c, lambda r: cores(r, 'target')):.2f}"
            lines.append(
                f"| {name} | {c} | {n.m(name, c, rate):.0f} | {target} | "
                f"{n.m(name, c, lambda r: cores(r, 'cpu1 busy')):.2f} | "
                f"{n.m(name, c, lambda r: cores(r, 'upstream', 'loadgen')):.2f} | "
                f"{n.m(name, c, lambda r: cores(r, 'cpu0 busy')):.2f} |"
            )
    proxied = [x for x in n.raw["names"] if x not in (DIRECT, NGINX, ONE_WORKER, TWO_WORKERS)]
    worst = max(
        (cores(r, "upstream", "loadgen") for x in proxied for c in (16, 64) for r in n.runs(x, c)),
        default=float("nan"),
    )
    lines += [
        "",
        f"Direct (upstream and load generator together on CPU 0) serves "
        f"{n.ratio(DIRECT, PROXY, 64, rate):.0f}x the full proxy's rate at c=64, and during "
        f"every Python proxy run (full, bare, before) the upstream and load generator used at "
        f"most {worst:.2f} of CPU 0, while CPU 1 (the target's core) was busy: the target is "
        "the bottleneck. The upstream costs the `(upstream ...)` figure of the direct rows per "
        "request, the load generator about as much. (The aiohttp test fixture costs ~65 us and "
        "aiohttp's client ~100 us per request; with them CPU 0 was 60-80% busy during proxy "
        "runs, which is why the benchmark has its own upstream and client.) nginx is the "
        "exception: it is so cheap that the load side (CPU 0 near 1.00 in its rows) limits it "
        "before its own core does, so its req/s is a lower bound; its CPU/req still holds.",
    ]
    return lines


def workers_section(n: Numbers) -> list[str]:
    info = n.raw.get("workers", {})
    lines = ["", "## Workers: 1 vs 2 at the same CPU budget per worker", ""]
    if not n.has(ONE_WORKER, 64):
        return [*lines, f"Not measured: {info.get('note', 'no quota available')}."]
    per = info.get("cpus_per_worker", 0.5)
    lines += [
        f"On 2 cores the load generator and upstream need CPU 0, so two workers cannot get a "
        f"core each. Instead every process of the proxy runs in a cgroup of its own with a "
        f"CPU quota of {per:g} CPU (period 10 ms), all on CPU 1: the single worker gets "
        f"{per:g} CPU, each of the two workers gets {per:g} CPU (the supervisor a group of its "
        f"own too; it idles). Each worker thus sees the same budget and the same throttling "
        f"pattern, and 2 x {per:g} stays below a whole core, so other jobs on the shared core "
        "do not eat into the 2-worker budget (a row that uses its whole budget shows tree CPU "
        "= budget). If a second worker turns its budget into throughput (the kernel spreads "
        "connections, nothing shared serialises them), req/s doubles and CPU/req stays the "
        "same. Compare these rows with each other only: throttling raises CPU/req and latency "
        "against the unthrottled `proxy (full)` row.",
        "",
    ]
    if not n.has(TWO_WORKERS, 64):
        lines += [f"2 workers: not measured: {info.get('note', '')}.", ""]
    lines += [
        "| row | c | req/s | CPU us/req | tree CPU (cores) | budget | CPU 0 (cores) | p99 ms "
        "| errors |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for c in (16, 64):
        for name in (ONE_WORKER, TWO_WORKERS):
            if not n.has(name, c):
                continue
            lines.append(
                f"| {name} | {c} | {n.m(name, c, rate):.0f} | {n.m(name, c, cpu_us):.1f} | "
                f"{n.m(name, c, lambda r: cores(r, 'target')):.2f} | "
                f"{per * (2 if name == TWO_WORKERS else 1):g} | "  # the workers' budget
                f"{n.m(name, c, lambda r: cores(r, 'upstream', 'loadgen')):.2f} | "
                f"{n.m(name, c, lambda r: r['p99_ms']):.1f} | "
                f"{sum(int(r['errors']) for r in n.runs(name, c))} |"
            )
    if n.has(TWO_WORKERS, 64):
        lines.append("")
        for c in (16, 64):
            pairs = zip(n.runs(TWO_WORKERS, c), n.runs(ONE_WORKER, c), strict=False)
            per_rep = ", ".join(
                f"{rate(two) / rate(one):.2f}x ({worker_share(two):.0%})" for two, one in pairs
            )
            lines.append(
                f"- c={c}: 2 workers / 1 worker req/s = "
                f"{n.ratio(TWO_WORKERS, ONE_WORKER, c, rate):.2f}x, CPU/req = "
                f"{n.ratio(TWO_WORKERS, ONE_WORKER, c, cpu_us):.2f}x (per-rep medians). Per rep, "
                f"req/s ratio (share of the 2-worker tree's CPU done by its busiest process): "
                f"{per_rep}."
            )
        lines += [
            "",
            "The workers accept on one shared listening socket. The load generator opens its "
            "keep-alive connections in one burst, and whichever worker wakes first may accept "
            "most of them: a rep where the busiest process did far more than 50% of the work "
            "is one where the connections were split unevenly, and the second worker's budget "
            "went partly unused (few long-lived connections, e.g. from one ingress, would see "
            "the same).",
        ]
    return lines


def worker_share(result: Result) -> float:
    """Share of the tree's CPU done by its busiest process (0.5 = evenly split by two)."""
    per_process = [float(v) for k, v in result["cpu_s"].items() if k.startswith("pid ")]
    total = sum(per_process)
    return max(per_process) / total if total else float("nan")


def before_section(n: Numbers) -> list[str]:
    before = next((x for x in n.raw["names"] if x.startswith("proxy (before")), None)
    if before is None or not n.has(before, 64):
        return []
    lines = [
        "",
        f"## Before vs after the hot-path work: {before} vs {PROXY}, same run",
        "",
        "The before row is the proxy of an older commit, run from a git worktree with the "
        "same venv (`--before PATH`), interleaved with the other rows. Ratios are after / "
        "before, medians of per-rep ratios.",
        "",
    ]
    for c in (1, 16, 64):
        lines.append(
            f"- c={c}: req/s {n.m(before, c, rate):.0f} -> {n.m(PROXY, c, rate):.0f} "
            f"({n.ratio(PROXY, before, c, rate):.2f}x), CPU/req {n.m(before, c, cpu_us):.1f} -> "
            f"{n.m(PROXY, c, cpu_us):.1f} us ({n.ratio(PROXY, before, c, cpu_us):.2f}x), "
            f"p50 {n.m(before, c, lambda r: r['p50_ms']):.2f} -> "
            f"{n.m(PROXY, c, lambda r: r['p50_ms']):.2f} ms"
        )
    if n.has(before):
        lines.append(
            f"- stream TTFB p50 {n.s(before, 'ttfb_p50_ms'):.2f} -> "
            f"{n.s(PROXY, 'ttfb_p50_ms'):.2f} ms"
        )
    return lines


def targets_table(n: Numbers) -> list[str]:
    raw = n.raw
    lines = [
        "",
        "## Targets (full proxy vs bare passthrough, same run)",
        "",
        "Tiny requests. The CPU and req/s goals against the bare passthrough and nginx are "
        "retired: they conflicted with memory per stream on every stack measured, and what "
        "users feel is many long streams held at once (the held-streams goals, below). They "
        "stay here as reference.",
        "",
        "| target | goal | measured | |",
        "|---|---|---|---|",
    ]
    if not n.has(BARE, 16):
        return [*lines, "| all | need the bare passthrough row | not measured | **not met** |"]
    for c in (16, 64):
        x = n.ratio(PROXY, BARE, c, cpu_us)
        lines.append(f"| CPU/req at c={c} | (retired) ≤ 1.15x bare | {x:.2f}x | - |")
    for c in (16, 64):
        x = n.ratio(PROXY, BARE, c, rate)
        lines.append(f"| req/s at c={c} | (retired) ≥ 0.9x bare | {x:.2f}x | - |")
    added = n.diff(PROXY, DIRECT, 1, lambda r: r["p50_ms"])
    bare_added = n.diff(BARE, DIRECT, 1, lambda r: r["p50_ms"])
    lines.append(
        f"| added p50 at c=1 | ≤ 0.45 ms over direct | {added:+.2f} ms "
        f"(bare passthrough {bare_added:+.2f}) | {ok(added <= 0.45)} |"
    )
    ttfb = n.s_diff(PROXY, BARE, "ttfb_p50_ms")
    lines.append(f"| stream TTFB p50 | ≤ bare + 0.3 ms | {ttfb:+.2f} ms | {ok(ttfb <= 0.3)} |")
    reads, bare_reads = n.s(PROXY, "reads_median"), n.s(BARE, "reads_median")
    lines.append(
        f"| reads per stream | = bare | {reads:.0f} vs {bare_reads:.0f} "
        f"| {ok(reads == bare_reads)} |"
    )
    rss = raw["rss_mib"]
    held = rss["held_run"]
    lines.append(
        f"| peak RSS, 64 concurrent streams | ≤ 60 MiB per worker | {rss['64_streams']:.1f} MiB "
        f"(idle {rss['idle']:.1f}; {held['streams']:.0f} streams, {held['errors']:.0f} errors) | "
        f"{ok(rss['64_streams'] <= 60)} |"
    )
    startups = raw["startup_s"]
    lines.append(
        f"| start to ready | ≤ 0.5 s | median {med(startups):.2f} s (max {max(startups):.2f}) | "
        f"{ok(med(startups) <= 0.5)} |"
    )
    reloads = raw["reload_s"]
    lines.append(
        f"| key reload after kubelet swap | ≤ 1 s | median {med(reloads) * 1000:.0f} ms, "
        f"max {max(reloads) * 1000:.0f} ms | {ok(max(reloads) <= 1.0)} |"
    )
    if n.has(IDENTITY, 16):
        for c in (16, 64):
            x = n.ratio(IDENTITY, PROXY, c, cpu_us)
            lines.append(
                f"| identity `require` + client limits: CPU/req at c={c} | ≤ 1.10x proxy "
                f"(full) | {x:.2f}x ({n.m(IDENTITY, c, cpu_us):.0f} vs "
                f"{n.m(PROXY, c, cpu_us):.0f} us) | {ok(x <= 1.10)} |"
            )
    if n.has(NGINX, 16):
        for c in (16, 64):
            x = n.ratio(PROXY, NGINX, c, cpu_us)
            lines.append(
                f"| CPU/req at c={c} | (retired) ≤ 2x nginx | {x:.2f}x "
                f"({n.m(PROXY, c, cpu_us):.0f} vs {n.m(NGINX, c, cpu_us):.0f} us) | - |"
            )
    else:
        lines.append(
            f"| CPU/req | (retired) ≤ 2x nginx | {raw.get('nginx_note', 'not measured')} | - |"
        )
    return lines


def footer() -> list[str]:
    return [
        "",
        "Key reload: the proxy re-reads the key file every 0.25 s "
        "(`LLM_PROXY_KEY_POLL_INTERVAL`), so the expected latency is 0-250 ms.",
        "Peak RSS is the largest VmHWM among the proxy's processes (per worker), of a fresh "
        "proxy that served 64 concurrent streams and nothing before.",
        "",
        "The machine is shared with other jobs: absolute rates move between runs, so compare "
        "rows of one run; ratios are taken within a rep. Each process runs at raised priority "
        "(nice -10) when the benchmark may set it.",
        "",
    ]


def clients_section(n: Numbers) -> list[str]:
    """The optional --clients rows: the same passthrough with httpx as upstream client."""
    clients = [x for x in n.raw["names"] if x.startswith("passthrough ")]
    if not clients or not n.has(BARE, 64):
        return []
    ratios = ", ".join(
        f"{x.removeprefix('passthrough ')} {n.ratio(x, BARE, 64, rate):.2f}x" for x in clients
    )
    return [
        "",
        "## Upstream client choice (`--clients`)",
        "",
        f"Same server, only the upstream client differs; rate at c=64 vs aiohttp's: {ratios}. "
        "httpx's pool bookkeeping caps it under concurrency (httpx issue #3215); aiohttp's "
        "`ClientSession` is what the proxy uses.",
    ]


FINISHED_HEADING = "## Finished experiments"


def finished_section(old: str) -> str:
    """The hand-written summaries of removed experiments in RESULTS.md, kept across runs."""
    if FINISHED_HEADING not in old:
        return ""
    section = old[old.index(FINISHED_HEADING) :]
    end = section.find("\n## ", len(FINISHED_HEADING))
    return section if end < 0 else section[:end]


def render(raw: dict[str, Any]) -> str:
    n = Numbers(raw)
    lines = header(raw)
    lines += targets_table(n)
    lines += rate_table(n)
    lines += stream_table(n)
    lines += bottleneck_section(n)
    lines += workers_section(n)
    lines += before_section(n)
    lines += clients_section(n)
    lines += footer()
    return "\n".join(lines)
