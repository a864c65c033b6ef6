"""One line describing the machine and its load, printed at the top of RESULTS.md."""

import os
import platform
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
