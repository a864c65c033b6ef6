"""Runs inside a pod (`python -c`, standard library only): one network attempt, or a loop
of them, printed as JSON lines. The network-policy scenarios exec it in client, scraper and
proxy pods, since what a policy allows depends on which pod the packet comes from.

  python -c SRC http URL [BODY]                    one HTTP request: status or error
  python -c SRC tcp HOST PORT                      one TCP connect
  python -c SRC resolve NAME                       one DNS lookup
  python -c SRC until ok|refused URL SECONDS       HTTP attempts every 0.1 s until the outcome
                                                   flips to ok (a 200) or refused (no reply)

Every attempt has a short timeout (ATTEMPT_TIMEOUT_S), so a dropped packet costs a bounded
wait; each result carries its duration and the wall-clock time it ended (the pod shares the
node's clock), so a test can time enforcement against the moment it changed a label.
"""

from __future__ import annotations

import json
import socket
import sys
import time
import urllib.error
import urllib.request
from typing import Any

ATTEMPT_TIMEOUT_S = 2.0
LOOP_INTERVAL_S = 0.1


def _timed(began: float, outcome: dict[str, Any]) -> dict[str, Any]:
    outcome["seconds"] = round(time.monotonic() - began, 3)
    outcome["time"] = time.time()
    return outcome


def http(url: str, body: str | None = None) -> dict[str, Any]:
    """One request (a POST when `body` is given): its status, or why there was none."""
    began = time.monotonic()
    data = body.encode() if body is not None else None
    headers = {"Content-Type": "application/json"} if data is not None else {}
    request = urllib.request.Request(url, data=data, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=ATTEMPT_TIMEOUT_S) as reply:
            return _timed(began, {"status": reply.status, "body": reply.read(2000).decode()})
    except urllib.error.HTTPError as exc:
        return _timed(began, {"status": exc.code})
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        return _timed(began, {"error": type(reason).__name__, "detail": str(reason)})


def tcp(host: str, port: int) -> dict[str, Any]:
    began = time.monotonic()
    try:
        with socket.create_connection((host, port), timeout=ATTEMPT_TIMEOUT_S):
            return _timed(began, {"connected": True})
    except OSError as exc:
        return _timed(began, {"connected": False, "error": type(exc).__name__})


def resolve(name: str) -> dict[str, Any]:
    began = time.monotonic()
    try:
        found = socket.getaddrinfo(name, None, socket.AF_INET, socket.SOCK_STREAM)
        return _timed(began, {"addresses": sorted({entry[4][0] for entry in found})})
    except OSError as exc:
        return _timed(began, {"addresses": [], "error": type(exc).__name__})


def until(want: str, url: str, seconds: float) -> dict[str, Any]:
    """Attempt every LOOP_INTERVAL_S until an attempt is `want` (ok: a 200; refused: no
    HTTP reply at all), for at most `seconds`. Prints a `started` line first, so the caller
    knows the loop runs before it changes anything."""
    print(json.dumps({"started": time.time()}), flush=True)
    deadline = time.monotonic() + seconds
    attempts, last = 0, {}
    while time.monotonic() < deadline:
        attempts += 1
        last = http(url)
        ok = last.get("status") == 200
        if (want == "ok" and ok) or (want == "refused" and "error" in last):
            return {"reached": True, "attempts": attempts, "last": last}
        time.sleep(LOOP_INTERVAL_S)
    return {"reached": False, "attempts": attempts, "last": last}


def main(argv: list[str]) -> dict[str, Any]:
    mode, *args = argv
    if mode == "http":
        return http(args[0], args[1] if len(args) > 1 else None)
    if mode == "tcp":
        return tcp(args[0], int(args[1]))
    if mode == "resolve":
        return resolve(args[0])
    if mode == "until":
        return until(args[0], args[1], float(args[2]))
    raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1:])), flush=True)
