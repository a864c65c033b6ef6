"""podman on a throwaway store, with the flags this machine needs.

runc, not crun (crun refuses the cgroup v1/v2 hybrid); cgroupfs (no systemd); the open-files
and process limits we already have (root here cannot raise them: no CAP_SYS_RESOURCE).
"""

import resource
import shutil
import subprocess
import tempfile
from pathlib import Path


class Podman:
    def __init__(self, store: Path) -> None:
        self.store = store
        # podman refuses a runroot longer than 50 characters (pytest's tmp paths can be).
        self.runroot = Path(tempfile.mkdtemp(prefix="podman-run-"))
        self.base = [
            "podman",
            "--root", str(store / "storage"),
            "--runroot", str(self.runroot),
            "--tmpdir", str(store / "tmp"),
            "--storage-driver", "overlay",
            "--runtime", "runc",
            "--cgroup-manager", "cgroupfs",
            "--events-backend", "file",
        ]  # fmt: skip

    def __call__(
        self, *args: str, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [*self.base, *args], capture_output=True, text=True, timeout=timeout, check=False
        )
        if check and done.returncode != 0:
            raise AssertionError(f"podman {' '.join(args)}: exit {done.returncode}\n{done.stderr}")
        return done

    @staticmethod
    def ulimits() -> list[str]:
        """Limits runc can set here: podman as root asks for more than the sandbox allows.

        Open files: the limit we have. Processes: buildah's default, 32768 (runc was refused
        even the 96364 this process has).
        """
        nofile = resource.getrlimit(resource.RLIMIT_NOFILE)
        nproc = min(resource.getrlimit(resource.RLIMIT_NPROC)[1], 32768)
        return [
            "--ulimit", f"nofile={nofile[0]}:{nofile[1]}",
            "--ulimit", f"nproc={nproc}:{nproc}",
        ]  # fmt: skip

    def reset(self) -> None:
        """Remove every container and image of this store and unmount it."""
        self("system", "reset", "--force", check=False, timeout=120)
        shutil.rmtree(self.runroot, ignore_errors=True)
