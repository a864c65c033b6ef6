"""`python -m bench.key_source`: what the Secret watch costs the proxy, side by side.

The same `python -m proxy serve` started alternately with LLM_PROXY_KEY_SOURCE=file and
=api (a fake Kubernetes API on loopback, fakes/kube_api.py, in a thread of
this process), `--reps` times each: start to the first /readyz 200, peak RSS idle once the
watch has listed (api) and after 64 streams held open at once (the main benchmark's memory
load). Prints the medians and the per-rep numbers; writes nothing.
"""

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

from bench.__main__ import HELD_STREAMS, KEY_A, loadgen
from bench.targets import (
    LOAD_CPU,
    PROXY_CPU,
    ROOT,
    Target,
    free_port,
    peak_rss_mib,
    pinned,
    spawn_printing_port,
)
from fakes.kube_api import FakeKubeApi, start_fake_kube_api
from fakes.kubelet_secret_dir import KubeletSecretDir

NS, SECRET, TOKEN = "bench", "openai-api-key", "bench-token"


def start(mode: str, upstream: str, key_file: Path, creds: Path, api: str) -> tuple[Target, float]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLM_PROXY_")}
    env |= {
        "LLM_PROXY_PORT": str(port),
        "LLM_PROXY_UPSTREAM": upstream,
        "LLM_PROXY_KEY_FILE": str(key_file),
        "LLM_PROXY_KEY_SOURCE": mode,
        "LLM_PROXY_MAX_IN_FLIGHT": "512",
    }
    if mode == "api":
        env |= {
            "LLM_PROXY_KEY_SECRET": SECRET,
            "LLM_PROXY_KUBE_API": api,
            "LLM_PROXY_KUBE_CREDENTIALS_DIR": str(creds),
        }
    began = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "proxy", "serve"], cwd=ROOT, env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=pinned(PROXY_CPU),
        text=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    ready = None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            body = httpx.get(url + "/readyz", timeout=1)
            if ready is None and body.status_code == 200:
                ready = time.perf_counter() - began
            if ready is not None and body.json().get("keySource", "api") == "api":
                break  # file mode says nothing; api mode: the watch has listed
        except httpx.TransportError:
            pass
        time.sleep(0.005)
    else:
        process.kill()
        raise TimeoutError(f"{mode}: not ready in 60 s")
    target = Target(mode, url + "/v1", process)
    target.settle()
    assert ready is not None
    return target, ready


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.key_source", description=__doc__)
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="llm-proxy-bench-keys-"))
    secret = KubeletSecretDir(work / "secret")
    secret.write(KEY_A)
    creds = work / "sa"
    creds.mkdir()
    (creds / "token").write_text(TOKEN)
    (creds / "namespace").write_text(NS)
    fake = FakeKubeApi(NS, TOKEN, allowed={SECRET})
    fake.put(SECRET, KEY_A)
    loop = asyncio.new_event_loop()
    threading.Thread(target=loop.run_forever, daemon=True).start()
    _, api_port = asyncio.run_coroutine_threadsafe(start_fake_kube_api(fake), loop).result(10)
    upstream_process, upstream_port = spawn_printing_port(["-m", "bench.upstream"], LOAD_CPU)
    upstream = f"http://127.0.0.1:{upstream_port}/v1"
    rows: dict[str, dict[str, list[float]]] = {
        mode: {"start_s": [], "idle_mib": [], "64_streams_mib": []} for mode in ("file", "api")
    }
    try:
        for _ in range(args.reps):
            for mode in ("file", "api"):
                target, ready = start(
                    mode, upstream, secret.key_file, creds, f"http://127.0.0.1:{api_port}"
                )
                try:
                    rows[mode]["start_s"].append(ready)
                    rows[mode]["idle_mib"].append(peak_rss_mib(target.pids))
                    loadgen({"url": target.base_url, **HELD_STREAMS})
                    rows[mode]["64_streams_mib"].append(peak_rss_mib(target.pids))
                finally:
                    target.stop()
    finally:
        upstream_process.terminate()
        upstream_process.wait(timeout=10)
    print(f"{args.reps} reps, file and api alternating; medians (per-rep values)")
    for mode, row in rows.items():
        cells = [
            f"{name} {statistics.median(values):.3f} ({', '.join(f'{v:.3f}' for v in values)})"
            for name, values in row.items()
        ]
        print(f"{mode:>4}: " + "; ".join(cells))


if __name__ == "__main__":
    main()
