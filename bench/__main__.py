"""`python -m bench`: the full proxy vs a bare passthrough, nginx and the upstream directly.

Processes: the fake upstream and the load generator share CPU 0; each proxying
target gets CPU 1. Each measurement is repeated (--reps) with the targets
interleaved, CPU per request is read from /proc, and ratios are medians of
per-rep ratios. Writes bench/RESULTS.md (raw numbers in bench/out/results.json).
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench import held as held_scenario
from bench import held_report, report
from bench.cgroup import cpu_hierarchy
from bench.issuer import BenchIdentity
from bench.machine import git_short, machine_line, measured_commit
from bench.nginx import start_nginx
from bench.targets import (
    LOAD_CPU,
    PROXY_CPU,
    ROOT,
    ProxySpec,
    Target,
    peak_rss_mib,
    pinned,
    raise_group_priority,
    spawn_printing_port,
    start_proxy,
    stop_all,
)
from fakes.kubelet_secret_dir import KubeletSecretDir

OUT = ROOT / "bench" / "out"
KEY_A = "sk-bench-FAKEKEY-aaaaaaaaaaaaaaaaaaaa"
KEY_B = "sk-bench-FAKEKEY-bbbbbbbbbbbbbbbbbbbb"
STREAM_SHAPE = "chunks:20,chunk-delay:0.002"
# The memory measurement's load: 64 streams held open at once, 256 in all.
HELD_STREAMS = {"mode": "stream", "concurrency": 64, "count": 256,
                "behaviour": "chunks:50,chunk-delay:0.01"}  # fmt: skip
# The bare passthrough every run measures: aiohttp's (the reference of the targets, and the
# proxy's own stack).
BARE_CLIENTS = {"aiohttp": report.BARE}
CPUS_PER_WORKER = 0.4  # each worker's quota; 2 workers: 0.8 of CPU 1, the rest left to others


def loadgen(spec: dict[str, object]) -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, "-m", "bench.loadgen", json.dumps(spec)], cwd=ROOT, check=True,
        capture_output=True, text=True, preexec_fn=pinned(LOAD_CPU), timeout=120,
    )  # fmt: skip
    return dict(json.loads(result.stdout))


def reload_latency(url: str, secret: KubeletSecretDir, key: str) -> float:
    from proxy.fingerprint import key_fingerprint

    wanted = key_fingerprint(key)
    with httpx.Client() as client:
        began = time.perf_counter()
        secret.write(key)
        deadline = began + 10
        while client.get(url + "/readyz").json().get("keyFingerprint") != wanted:
            if time.perf_counter() > deadline:
                raise TimeoutError("key reload not seen in 10 s")
            time.sleep(0.002)
        return time.perf_counter() - began


def proxy_has_workers(tree: Path) -> bool:
    """The 2-worker row needs the proxy's `workers` setting (LLM_PROXY_WORKERS) in `tree`."""
    probe = "from proxy.settings import Settings; print('workers' in Settings.model_fields)"
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=tree, env={**os.environ, "PYTHONPATH": str(tree)},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    return result.stdout.strip() == "True"


def proxy_specs(
    args: argparse.Namespace, notes: dict[str, Any], identity: ProxySpec | None
) -> list[ProxySpec]:
    """The proxy rows: full, with identity, optionally the before tree, the workers pair."""
    tree = args.proxy_tree
    specs = [ProxySpec(report.PROXY, tree=tree)]
    if identity is not None:
        specs.append(identity)
    if args.before:
        before = Path(args.before).resolve()
        specs.append(ProxySpec(f"proxy (before, {git_short(before)})", tree=before))
    if args.no_workers:
        notes["note"] = "skipped (--no-workers)"
        return specs
    if cpu_hierarchy() is None:
        notes["note"] = "no writable cgroup cpu controller (needs root)"
        print(f"skipping workers rows: {notes['note']}", flush=True)
        return specs
    has_workers = proxy_has_workers(tree)
    per = CPUS_PER_WORKER
    notes["cpus_per_worker"] = per
    specs.append(
        ProxySpec(report.ONE_WORKER, tree=tree, workers=1 if has_workers else None, cpus=per,
                  concurrencies=(16, 64), streams=False)
    )  # fmt: skip
    if has_workers:
        specs.append(
            ProxySpec(report.TWO_WORKERS, tree=tree, workers=2, cpus=per, concurrencies=(16, 64),
                      streams=False)
        )  # fmt: skip
    else:
        notes["note"] = "proxy.settings.Settings has no `workers` field in this tree"
        print(f"skipping the 2-worker row: {notes['note']}", flush=True)
    return specs


def identity_spec(
    args: argparse.Namespace, work: Path, helpers: list[subprocess.Popen[str]]
) -> ProxySpec | None:
    """The identity row: the full proxy requiring a ServiceAccount token of a client with
    request and token limits, verified against a fake issuer on loopback (CPU 0)."""
    if args.no_identity:
        return None
    identity = BenchIdentity.create(work)
    issuer, port = spawn_printing_port(["-m", "bench.issuer", str(identity.jwks_file)], LOAD_CPU)
    helpers.append(issuer)
    return ProxySpec(
        report.IDENTITY, tree=args.proxy_tree, concurrencies=(16, 64), streams=False,
        env=identity.proxy_env(port), token_file=identity.caller_token_file,
    )  # fmt: skip


def start_targets(
    args: argparse.Namespace, upstream: str, upstream_port: int, secret: KubeletSecretDir,
    work: Path, raw: dict[str, Any], targets: list[Target], helpers: list[subprocess.Popen[str]],
) -> list[float]:  # fmt: skip
    """Start every target into `targets` (the caller stops them and `helpers`); the first
    start-to-ready."""
    targets.append(Target(report.DIRECT, upstream))
    startups: list[float] = []
    notes: dict[str, Any] = {}
    raw["workers"] = notes
    for spec in proxy_specs(args, notes, identity_spec(args, work, helpers)):
        try:
            target, ready = start_proxy(spec, upstream, secret.key_file, OUT / "proxy.log")
        except (RuntimeError, TimeoutError) as exc:
            if spec.name == report.PROXY:
                raise
            notes.setdefault("note", f"{spec.name} did not start ({exc})")
            print(f"skipping {spec.name}: {exc}", flush=True)
            continue
        if spec.name == report.PROXY:
            startups.append(ready)
        targets.append(target)
        print(f"{spec.name}: ready in {ready:.2f} s, processes {target.pids}", flush=True)
    clients = [*BARE_CLIENTS, *filter(None, args.clients.split(","))]
    for client in clients:
        try:
            process, port = spawn_printing_port(
                ["-m", "bench.passthrough", client, upstream], PROXY_CPU
            )
        except ValueError:
            print(f"skipping passthrough {client}: could not start (missing package?)")
            continue
        name = BARE_CLIENTS.get(client, f"passthrough {client}")
        target = Target(name, f"http://127.0.0.1:{port}/v1", process)
        target.settle()
        targets.append(target)
    if args.no_nginx:
        raw["nginx_note"] = "skipped (--no-nginx)"
    else:
        try:
            targets.append(start_nginx(upstream_port, work, KEY_A, report.NGINX))
        except (RuntimeError, subprocess.CalledProcessError, TimeoutError) as exc:
            raw["nginx_note"] = f"not measured: {exc}"
            print(f"skipping nginx: {exc}", flush=True)
    order = [report.DIRECT, report.PROXY, report.IDENTITY, report.BARE, report.NGINX]
    targets.sort(key=lambda t: order.index(t.name) if t.name in order else len(order))
    return startups


def measure(
    args: argparse.Namespace, targets: list[Target], upstream_pids: list[int], raw: dict[str, Any]
) -> None:
    """All rate and stream runs, reps interleaved, the order rotated each rep."""
    rates: dict[str, list[dict[str, Any]]] = raw.setdefault("rates", {})
    streams: dict[str, list[dict[str, Any]]] = raw.setdefault("streams", {})
    for rep in range(args.reps):
        shift = rep % len(targets)
        ordered = targets[shift:] + targets[:shift]
        for concurrency in (1, 16, 64):
            for target in ordered:
                if concurrency not in target.concurrencies:
                    continue
                groups = {"target": target.pids, "upstream": upstream_pids}
                if target.quota is not None:
                    groups |= {f"pid {pid}": [pid] for pid in target.pids}
                spec = {"url": target.base_url, "mode": "chat", "concurrency": concurrency,
                        "duration": args.duration, "warmup": 0.5, "cpu": groups}  # fmt: skip
                if target.token_file is not None:
                    spec["token_file"] = str(target.token_file)
                result = loadgen(spec)
                rates.setdefault(f"{target.name}|c{concurrency}", []).append(result)
                us = report.cpu_us(result) if target.pids else report.cpu_us(result, "upstream")
                print(f"rep {rep} c={concurrency:<3} {target.name:<28} {result['rate']:8.0f} req/s "
                      f"cpu {us:6.1f} us/req  p50 {result['p50_ms']:6.2f} ms  "
                      f"errors {result['errors']}", flush=True)  # fmt: skip
        for target in ordered:
            if not target.streams:
                continue
            spec = {"url": target.base_url, "mode": "stream", "concurrency": 1,
                    "count": args.streams, "behaviour": STREAM_SHAPE}  # fmt: skip
            result = loadgen(spec)
            streams.setdefault(target.name, []).append(result)
            print(f"rep {rep} stream {target.name:<28} ttfb p50 {result['ttfb_p50_ms']:.2f} ms "
                  f"reads/stream {result['reads_median']}", flush=True)  # fmt: skip


def memory_and_startup(
    tree: Path, upstream: str, secret: KubeletSecretDir, raw: dict[str, Any],
    startups: list[float],
) -> None:  # fmt: skip
    """Peak RSS of a fresh proxy under 64 concurrent streams; more start-to-ready samples."""
    fresh, ready = start_proxy(ProxySpec(report.PROXY, tree=tree), upstream, secret.key_file,
                               OUT / "proxy.log")  # fmt: skip
    startups.append(ready)
    try:
        idle = peak_rss_mib(fresh.pids)
        held = loadgen({"url": fresh.base_url, **HELD_STREAMS})
        fresh.settle()
        raw["rss_mib"] = {"idle": idle, "64_streams": peak_rss_mib(fresh.pids), "held_run": held}
    finally:
        fresh.stop()
    for _ in range(2):
        again, ready = start_proxy(ProxySpec(report.PROXY, tree=tree), upstream, secret.key_file,
                                   OUT / "proxy.log")  # fmt: skip
        startups.append(ready)
        again.stop()


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--reps", type=int, default=4, help="repetitions (≥3 for the report)")
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per rate run")
    parser.add_argument("--streams", type=int, default=150, help="streams per TTFB run")
    parser.add_argument("--quick", action="store_true", help="short runs, for iteration")
    parser.add_argument("--before", metavar="PATH", help="also run the proxy of this tree")
    parser.add_argument(
        "--proxy-tree", metavar="PATH", type=Path, default=ROOT,
        help="the tree whose proxy is measured (default: this one, as it is on disk)",
    )  # fmt: skip
    parser.add_argument(
        "--clients", default="", help="extra passthrough clients: httpx,httpx-aiohttp"
    )
    parser.add_argument("--no-nginx", action="store_true", help="skip the nginx row")
    parser.add_argument("--no-workers", action="store_true", help="skip the workers rows")
    parser.add_argument(
        "--no-identity", action="store_true", help="skip the identity `require` row"
    )
    parser.add_argument("--no-held", action="store_true", help="skip the held-streams scenario")
    parser.add_argument(
        "--held-only", action="store_true",
        help="only the held-streams scenario (bench.held), its section of RESULTS.md replaced",
    )  # fmt: skip
    held_scenario.add_arguments(parser)
    parser.add_argument(
        "--render-only", action="store_true",
        help="rewrite RESULTS.md from bench/out/results.json without measuring",
    )  # fmt: skip
    args = parser.parse_args()
    args.proxy_tree = args.proxy_tree.resolve()
    if args.quick:
        args.duration, args.streams = min(args.duration, 1.0), min(args.streams, 40)
    args.held_streams = sorted(int(n) for n in args.held_streams.split(",") if n.strip())
    args.only = ""
    return args


def main() -> None:
    args = parse_args()
    if args.render_only:
        write_report(json.loads((OUT / "results.json").read_text()))
        return
    OUT.mkdir(parents=True, exist_ok=True)
    # SIGTERM (e.g. `kill PID` of a background run) unwinds like Ctrl-C: every target,
    # upstream and scratch dir is stopped by the `finally` blocks, nothing is left running.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    raise_group_priority()
    machine = machine_line()
    print(machine, flush=True)
    if args.held_only:
        commit = measured_commit(args.proxy_tree)
        section = held_report.render(held_scenario.run(args, machine, commit))
        held_report.replace_section(ROOT / "bench" / "RESULTS.md", section)
        print(section)
        return
    raw: dict[str, Any] = {
        "args": {"reps": args.reps, "duration": args.duration, "streams": args.streams},
        "machine": machine,
        "proxy_commit": measured_commit(args.proxy_tree),
    }
    work = Path(tempfile.mkdtemp(prefix="llm-proxy-bench-"))
    secret = KubeletSecretDir(work)
    secret.write(KEY_A)
    upstream_process, upstream_port = spawn_printing_port(["-m", "bench.upstream"], LOAD_CPU)
    upstream = f"http://127.0.0.1:{upstream_port}/v1"
    targets: list[Target] = []
    helpers: list[subprocess.Popen[str]] = []
    try:
        startups = start_targets(args, upstream, upstream_port, secret, work, raw, targets, helpers)
        raw["names"] = [t.name for t in targets]
        measure(args, targets, [upstream_process.pid], raw)
        proxy = next(t for t in targets if t.name == report.PROXY)
        raw["reload_s"] = [
            reload_latency(proxy.base_url.removesuffix("/v1"), secret, key)
            for key in (KEY_B, KEY_A, KEY_B, KEY_A, KEY_B)
        ]
        for target in targets:
            target.stop()
        memory_and_startup(args.proxy_tree, upstream, secret, raw, startups)
        raw["startup_s"] = startups
    finally:
        for helper in helpers:  # by its own process, never by name
            helper.terminate()
            helper.wait(timeout=30)
        stop_all(targets, upstream_process, work)
    if not args.no_held:
        raw["held"] = held_scenario.run(args, machine, raw["proxy_commit"])
    (OUT / "results.json").write_text(json.dumps(raw, indent=2))
    write_report(raw)


def write_report(raw: dict[str, Any]) -> None:
    """RESULTS.md: this run's tables, its held-streams section (or the file's, when this
    run skipped it), then the hand-written finished-experiments section."""
    path = ROOT / "bench" / "RESULTS.md"
    old = path.read_text() if path.exists() else ""
    held = held_report.render(raw["held"]) if "held" in raw else held_report.section(old)
    parts = [report.render(raw), held, report.finished_section(old)]
    text = "\n\n".join(part.strip("\n") for part in parts if part.strip()) + "\n"
    path.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
