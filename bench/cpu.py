"""CPU time of a process tree from /proc, so each target's cost per request is measured.

utime+stime of /proc/<pid>/stat count every thread of a process; summing the tree
covers a proxy that forks workers or an nginx master with its worker.
"""

import os
from pathlib import Path

PROC = Path("/proc")
TICKS_PER_S = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def stat_fields(pid: int, proc: Path = PROC) -> list[str]:
    """The fields of /proc/<pid>/stat after the command name (which may hold spaces)."""
    text = (proc / str(pid) / "stat").read_text()
    return text[text.rindex(")") + 2 :].split()


def cpu_seconds(pid: int, proc: Path = PROC) -> float:
    """User + system CPU of one process (all its threads); 0 if it is gone."""
    try:
        fields = stat_fields(pid, proc)
    except (FileNotFoundError, ProcessLookupError, ValueError):
        return 0.0
    # After the name: state(0) ppid(1) ... utime(11) stime(12).
    return (int(fields[11]) + int(fields[12])) / TICKS_PER_S


def descendants(root: int, proc: Path = PROC) -> list[int]:
    """`root` and every process below it, found through the ppid of each /proc entry."""
    children: dict[int, list[int]] = {}
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int(stat_fields(int(entry.name), proc)[1])
        except (FileNotFoundError, ProcessLookupError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    tree, queue = [], [root]
    while queue:
        pid = queue.pop()
        tree.append(pid)
        queue.extend(children.get(pid, []))
    return sorted(tree)


def tree_cpu_seconds(pids: list[int], proc: Path = PROC) -> float:
    """CPU of a fixed set of processes (a tree listed once, after the target is ready)."""
    return sum(cpu_seconds(pid, proc) for pid in pids)


def cpu_busy_seconds(cpu: int, proc: Path = PROC) -> float:
    """Time CPU `cpu` spent on anything but idle and iowait, all processes (/proc/stat).

    Beside a target's own CPU this shows whether its core was saturated (by it or
    by other jobs on a shared machine) and whether the load core had headroom.
    """
    for line in (proc / "stat").read_text().splitlines():
        if line.startswith(f"cpu{cpu} "):
            ticks = [int(x) for x in line.split()[1:]]
            return (sum(ticks[:8]) - ticks[3] - ticks[4]) / TICKS_PER_S
    return 0.0


def start_ticks(pid: int, proc: Path = PROC) -> int | None:
    """When a process started (clock ticks after boot): tells a pid from its reuse."""
    try:
        return int(stat_fields(pid, proc)[19])
    except (FileNotFoundError, ProcessLookupError, ValueError, IndexError):
        return None
