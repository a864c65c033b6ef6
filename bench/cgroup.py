"""A CPU quota for one benchmark target, through cgroup v2 (cpu.max) or v1 (cfs quota).

The workers rows give the proxy's whole process tree a fixed CPU budget so that
1 and 2 workers can be compared on a 2-core machine where the load generator
needs a core of its own (see RESULTS.md). Each group is made under the root of
the cpu hierarchy, named after this benchmark's pid, and removed when done.
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
    controllers = V2_ROOT / "cgroup.controllers"
    if controllers.exists() and "cpu" in controllers.read_text().split():
        root, version = V2_ROOT, 2
    elif (V1_ROOT / "cpu.cfs_quota_us").exists():
        root, version = V1_ROOT, 1
    else:
        return None
    return (root, version) if os.access(root, os.W_OK) else None


class CpuQuota:
    """A cgroup limited to `cpus` CPUs' worth of time; `enter` is a preexec_fn step."""

    def __init__(self, name: str, cpus: float) -> None:
        found = cpu_hierarchy()
        if found is None:
            raise PermissionError("no writable cgroup cpu controller (needs root)")
        root, self.version = found
        self.path = root / f"llmgw-bench-{os.getpid()}-{name}"
        self.path.mkdir()
        quota = int(cpus * PERIOD_US)
        # A high weight, like the other targets' nice -10: the quota, not other jobs
        # on the machine, should be what limits the group.
        if self.version == 2:
            (self.path / "cpu.max").write_text(f"{quota} {PERIOD_US}")
            (self.path / "cpu.weight").write_text("1000")
        else:
            (self.path / "cpu.cfs_period_us").write_text(str(PERIOD_US))
            (self.path / "cpu.cfs_quota_us").write_text(str(quota))
            (self.path / "cpu.shares").write_text("10240")

    def enter(self) -> None:
        """Move the calling process (a child about to exec) into the group."""
        (self.path / "cgroup.procs").write_text(str(os.getpid()))

    def throttled_s(self) -> float:
        """Time the group spent throttled so far (cpu.stat), for the report."""
        stats = dict(line.split() for line in (self.path / "cpu.stat").read_text().splitlines())
        if self.version == 2:
            return int(stats.get("throttled_usec", 0)) / 1e6
        return int(stats.get("throttled_time", 0)) / 1e9

    def remove(self) -> None:
        """rmdir once its processes are gone (they were stopped and reaped just before)."""
        for _ in range(50):
            with contextlib.suppress(FileNotFoundError):
                try:
                    self.path.rmdir()
                except OSError:
                    time.sleep(0.1)
                    continue
            return
