"""`make demo` in a clone with no ../shared beside it: it runs, or fails at once naming what
is missing.

scripts/ is copied into a temporary "clone" (no ../shared, no .venv) and `scripts/demo.sh up`
runs there with a PATH of the test's choosing. Where the machine lacks something, the demo
must stop before it creates anything; where it has everything, it must get past its checks
without asking for ../shared. `go` is a stub that fails, so no case builds or starts anything.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def clone(tmp_path: Path) -> Path:
    repo = tmp_path / "clone"
    shutil.copytree(ROOT / "scripts", repo / "scripts", ignore=shutil.ignore_patterns("*.go*"))
    assert not (tmp_path / "shared").exists()
    return repo


def stub(directory: Path, name: str, script: str) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / name).write_text(f"#!/bin/sh\n{script}\n")
    (directory / name).chmod(0o755)


def demo_up(repo: Path, path: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {
        "PATH": path,
        "HOME": str(repo.parent),
        "LLM_GATEWAY_DEMO_DIR": str(repo.parent / "demo"),
        "LLM_GATEWAY_E2E_CACHE": str(repo.parent / "cache"),
    }
    return subprocess.run(
        ["bash", str(repo / "scripts" / "demo.sh"), "up"],
        env={**base, **env}, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def test_a_machine_without_go_or_venv_is_told_at_once(clone: Path) -> None:
    done = demo_up(clone, "/usr/bin:/bin")
    assert done.returncode == 1
    assert "demo: missing: go on PATH" in done.stderr
    assert f"demo: missing: the project's virtualenv {clone}/.venv (make venv)" in done.stderr
    assert not (clone.parent / "demo").exists()  # nothing started, nothing written
    assert not (clone.parent / "cache").exists()


def test_a_crds_dir_that_is_not_there_is_named(clone: Path) -> None:
    stub(clone.parent / "bin", "go", "exit 1")
    stub(clone / ".venv" / "bin", "python", "exit 1")
    done = demo_up(clone, f"{clone.parent}/bin:/usr/bin:/bin", LLM_GATEWAY_CRDS_DIR="/nowhere")
    assert done.returncode == 1
    assert "missing: LLM_GATEWAY_CRDS_DIR=/nowhere is not a folder" in done.stderr
    assert "go on PATH" not in done.stderr
    assert not (clone.parent / "demo").exists()


def test_with_everything_there_no_shared_folder_is_asked_for(clone: Path) -> None:
    stub(clone.parent / "bin", "go", 'echo "stub go $*" >&2; exit 1')
    stub(clone / ".venv" / "bin", "python", "exit 1")
    done = demo_up(clone, f"{clone.parent}/bin:/usr/bin:/bin")
    assert "missing:" not in done.stderr
    assert "demo: 1/5 toolchain" in done.stderr  # past the checks, into the toolchain
    assert "stub go build" in done.stderr  # where the stub stops it, before any real build
    assert done.returncode == 1
