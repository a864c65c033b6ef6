"""What a run measured on: the machine and its load, and the commit of each proxy tree."""

import os
import platform
import subprocess
import time
from pathlib import Path


def machine_line() -> str:
    """CPU, cores, kernel, versions and the load average at start (the machine is shared)."""
    cpu = "unknown CPU"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    import aiohttp

    load = os.getloadavg() if hasattr(os, "getloadavg") else (0, 0, 0)
    return (
        f"{cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}, aiohttp {aiohttp.__version__}, uvloop; "
        f"load average at start {load[0]:.2f} (shared machine); "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
    )


def git_short(tree: Path) -> str:
    """The tree's HEAD, abbreviated (its folder name outside git)."""
    result = subprocess.run(
        ["git", "-C", str(tree), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    )
    return result.stdout.strip() or tree.name


def measured_commit(tree: Path) -> str:
    """The commit whose proxy is measured, and whether proxy/ had uncommitted edits."""
    status = subprocess.run(
        ["git", "-C", str(tree), "status", "--porcelain", "--", "proxy"],
        capture_output=True, text=True,
    )  # fmt: skip
    dirty = " with uncommitted changes in proxy/" if status.stdout.strip() else ""
    return git_short(tree) + dirty
