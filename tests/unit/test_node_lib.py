"""The node scripts' shell library (scripts/e2e/lib.sh): start, wait_for and stop by PID.

Each test sources the library in a real bash with a state dir of its own and starts `sleep`
or `sh` as the daemon, so what is checked is what cluster.sh and control-plane.sh get.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

LIB = Path(__file__).resolve().parents[2] / "scripts" / "e2e" / "lib.sh"


def bash(state: Path, script: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """Run SCRIPT in `bash -c` (so `log` names the caller `node-test`) with lib.sh sourced."""
    return subprocess.run(
        ["bash", "-c", f'set -euo pipefail; state="$1"; source "$2"; {script}', "node-test",
         str(state), str(LIB)],
        capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip


def alive(pid: int, settle_s: float = 2.0) -> bool:
    """Whether PID still runs after up to SETTLE_S (a KILL lands a moment after it is sent)."""
    deadline = time.monotonic() + settle_s
    while _running(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return _running(pid)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped by init) counts as gone.
    try:
        return "State:\tZ" not in Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False


def test_start_records_the_daemons_own_pid_and_log(tmp_path: Path) -> None:
    done = bash(tmp_path, "start echoer sh -c 'echo hello; exec sleep 30'; sleep 0.3")
    assert done.returncode == 0, done.stderr
    pid = int((tmp_path / "pids" / "echoer").read_text())
    try:
        assert Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0] == b"sleep"
        assert (tmp_path / "logs" / "echoer.log").read_text() == "hello\n"
    finally:
        os.kill(pid, 9)


def test_wait_for_returns_once_the_check_passes(tmp_path: Path) -> None:
    marker = tmp_path / "ready"
    done = bash(
        tmp_path,
        f"start d sh -c 'sleep 0.5; touch {marker}; exec sleep 30'; wait_for d 10 test -e {marker};"
        " stop d",
    )
    assert done.returncode == 0, done.stderr


def test_wait_for_gives_up_at_once_when_the_daemon_exits(tmp_path: Path) -> None:
    began = time.monotonic()
    done = bash(tmp_path, "start d sh -c 'echo boom; exit 3'; wait_for d 20 false")
    assert done.returncode == 1
    assert time.monotonic() - began < 5  # not the 20 s deadline
    assert "node-test: d exited before it was ready (waited for: false)" in done.stderr
    assert "boom" in done.stderr  # the tail of its log


def test_wait_for_fails_after_its_deadline_with_the_log(tmp_path: Path) -> None:
    done = bash(tmp_path, "start d sh -c 'echo still-starting; exec sleep 30'; wait_for d 1 false"
                "|| { stop d; exit 7; }")  # fmt: skip
    assert done.returncode == 7
    assert "d not ready after 1s (waited for: false)" in done.stderr
    assert "still-starting" in done.stderr


def test_stop_ends_the_daemon_by_pid_and_forgets_it(tmp_path: Path) -> None:
    done = bash(tmp_path, "start d sleep 30; cat $state/pids/d; stop d; stop d")
    assert done.returncode == 0, done.stderr
    assert not alive(int(done.stdout))
    assert not (tmp_path / "pids" / "d").exists()


def test_kill_pid_kills_what_ignores_term(tmp_path: Path) -> None:
    done = bash(
        tmp_path,
        "start d sh -c 'trap \"\" TERM; echo up; while :; do sleep 0.1; done'; "
        "wait_for d 5 grep -q up $state/logs/d.log; pid=$(cat $state/pids/d); "
        "kill_pid $pid; echo $pid",
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    assert not alive(int(done.stdout))
