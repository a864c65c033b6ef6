"""A CPU quota for one benchmark target, through cgroup v2 (cpu.max) or v1 (cfs quota).

The workers rows give each proxy process a fixed CPU budget so that 1 and 2
workers can be compared on a 2-core machine where the load generator needs a
core of its own (see RESULTS.md). Each group is made under the root of the cpu
hierarchy, named after this benchmark's pid, and removed when done.
"""

import contextlib
import os
import time
from pathlib import Path

V2_ROOT = Path("/sys/fs/cgroup")
V1_ROOT = Path("/sys/fs/cgroup/cpu")
PERIOD_US = 10_000  # a short period: throttling in 10 ms slices, not 100 ms stalls


def cpu_hierarchy() -> tuple[Path, int] | None:
    """Where a cpu-quota group can be made (root, version), or None if nowhere writable."""
    enabled = V2_ROOT / "cgroup.subtree_control"  # v2: cpu must be on for child groups
    if enabled.exists() and "cpu" in enabled.read_text().split():
        root, version = V2_ROOT, 2
    elif (V1_ROOT / "cpu.cfs_quota_us").exists():
        root, version = V1_ROOT, 1
    else:
        return None
    return (root, version) if os.access(root, os.W_OK) else None


class CpuQuota:
    """CPU-quota cgroups of `cpus` CPUs each: one for a target's root process, one more
    for each process it forks (`isolate`), so every worker of a multi-process proxy
    gets the same budget and the same throttling pattern as a single worker does."""

    def __init__(self, name: str, cpus: float) -> None:
        found = cpu_hierarchy()
        if found is None:
            raise PermissionError("no writable cgroup cpu controller (needs root)")
        self.root, self.version = found
        self.name, self.cpus = name, cpus
        self.paths: list[Path] = []
        self.first = self._group()

    def _group(self) -> Path:
        path = self.root / f"llmgw-bench-{os.getpid()}-{self.name}-{len(self.paths)}"
        path.mkdir()
        self.paths.append(path)
        quota = int(self.cpus * PERIOD_US)
        # A high weight, like the other targets' nice -10: the quota, not other jobs
        # on the machine, should be what limits the group.
        if self.version == 2:
            (path / "cpu.max").write_text(f"{quota} {PERIOD_US}")
            (path / "cpu.weight").write_text("1000")
        else:
            (path / "cpu.cfs_period_us").write_text(str(PERIOD_US))
            (path / "cpu.cfs_quota_us").write_text(str(quota))
            (path / "cpu.shares").write_text("10240")
        return path

    def enter(self) -> None:
        """preexec_fn step: move the calling process (about to exec) into the first group."""
        (self.first / "cgroup.procs").write_text(str(os.getpid()))

    def isolate(self, pids: list[int]) -> None:
        """Give each of `pids` (forked workers) a group of its own with the same quota."""
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                (self._group() / "cgroup.procs").write_text(str(pid))

    def remove(self) -> None:
        """rmdir every group once its processes are gone (stopped and reaped just before)."""
        for path in reversed(self.paths):
            for _ in range(50):
                try:
                    path.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.1)
        self.paths.clear()
