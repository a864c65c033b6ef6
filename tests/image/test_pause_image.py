"""The pause image, built by scripts/image/build-pause.sh: what the node's containerd runs first.

.venv/bin/pytest -m image tests/image       (root)
"""

import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.image.oci import Layout, image_cache
from tests.image.podman import Podman
from tests.support.proxy import ROOT

pytestmark = [pytest.mark.image, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def pause_layout(tmp_path_factory: pytest.TempPathFactory) -> Layout:
    done = subprocess.run(
        [str(ROOT / "scripts/image/build-pause.sh")],
        capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-4000:]
    digest = done.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", digest), done.stdout
    copy = tmp_path_factory.mktemp("pause") / "pause.oci"
    subprocess.run(["cp", "-a", str(image_cache() / "pause.oci"), str(copy)], check=True)
    layout = Layout(copy)
    assert layout.digest == digest
    return layout


@pytest.fixture(scope="module")
def pause_binary(pause_layout: Layout, tmp_path_factory: pytest.TempPathFactory) -> Path:
    files = list(pause_layout.files())
    assert [f.path for f in files] == ["pause"]  # nothing else in the image
    binary = tmp_path_factory.mktemp("bin") / "pause"
    binary.write_bytes(files[0].data)
    binary.chmod(0o755)
    return binary


def children(pid: int) -> list[int]:
    text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    return [int(child) for child in text.split()]


def catches_sigterm(pid: int) -> bool:
    status = Path(f"/proc/{pid}/status").read_text()
    caught = re.search(r"^SigCgt:\s+([0-9a-f]+)$", status, re.M)
    return caught is not None and bool(int(caught.group(1), 16) & (1 << (signal.SIGTERM - 1)))


def state(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


@pytest.fixture
def pause_in_pid_namespace(pause_binary: Path) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """pause as PID 1 of a new pid namespace (as in a pod): unshare, and pause's host pid."""
    unshare = subprocess.Popen(["unshare", "--pid", "--fork", "--kill-child", str(pause_binary)])
    try:
        deadline = time.monotonic() + 10
        # Ready once its SIGTERM handler is in: PID 1 of a namespace ignores a signal it does
        # not catch, so a SIGTERM sent earlier would be lost.
        while not (children(unshare.pid) and catches_sigterm(children(unshare.pid)[0])):
            assert time.monotonic() < deadline, "pause did not start"
            time.sleep(0.02)
        yield unshare, children(unshare.pid)[0]
    finally:
        # unshare ignores SIGTERM while it waits; SIGKILL takes pause with it (--kill-child).
        unshare.kill()
        unshare.wait(timeout=10)


def test_image_is_one_static_file_run_as_65535(pause_layout: Layout, pause_binary: Path) -> None:
    config = pause_layout.config["config"]
    assert config["Entrypoint"] == ["/pause"]
    assert config["User"] == "65535:65535"
    assert "Cmd" not in config or not config["Cmd"]
    assert pause_binary.stat().st_size < 1_000_000
    elf = subprocess.run(["file", "-b", str(pause_binary)], capture_output=True, text=True)
    if elf.returncode == 0:  # `file` is optional here
        assert "statically linked" in elf.stdout, elf.stdout
    version = subprocess.run([str(pause_binary), "-v"], capture_output=True, text=True, check=True)
    assert version.stdout.strip() == "llm-gateway-pause 1"


def test_reaps_orphans_of_its_pid_namespace(
    pause_in_pid_namespace: tuple[subprocess.Popen[bytes], int],
) -> None:
    _, pause = pause_in_pid_namespace
    # A process in the namespace leaves an orphan behind: it is re-parented to PID 1, pause.
    subprocess.run(
        ["nsenter", "--target", str(pause), "--pid", "--", "sh", "-c", "sleep 0.3 & exit 0"],
        check=True, timeout=10,
    )  # fmt: skip
    assert len(children(pause)) == 1  # the orphaned sleep, now pause's child
    deadline = time.monotonic() + 5
    while children(pause):
        zombies = [child for child in children(pause) if state(child) == "Z"]
        assert time.monotonic() < deadline, f"not reaped: {zombies}"
        time.sleep(0.05)
    assert state(pause) == "S"


def test_exits_0_on_sigterm_as_pid_1(
    pause_in_pid_namespace: tuple[subprocess.Popen[bytes], int],
) -> None:
    unshare, pause = pause_in_pid_namespace
    os.kill(pause, signal.SIGTERM)
    assert unshare.wait(timeout=3) == 0  # unshare exits with pause's status


def test_runs_as_a_container_and_stops_on_sigterm(pause_layout: Layout, tmp_path: Path) -> None:
    podman = Podman(tmp_path)
    name = f"llm-pause-image-test-{os.getpid()}"
    try:
        image = podman("pull", "--quiet", f"oci:{pause_layout.root}:pause").stdout.split()[-1]
        podman("run", "--detach", "--name", name, "--network", "none", "--read-only",
               "--cap-drop", "ALL", *Podman.ulimits(), image)  # fmt: skip
        pid = int(podman("inspect", "--format", "{{.State.Pid}}", name).stdout.strip())
        status = Path(f"/proc/{pid}/status").read_text()
        assert re.search(r"^Uid:\s+65535\s", status, re.M), status
        assert re.search(r"^NSpid:\s+\d+\s+1$", status, re.M), status  # PID 1 in its namespace
        deadline = time.monotonic() + 10
        while not catches_sigterm(pid):
            assert time.monotonic() < deadline, "no SIGTERM handler"
            time.sleep(0.02)
        started = time.monotonic()
        podman("stop", "--time", "10", name, timeout=30)
        assert time.monotonic() - started < 5  # SIGTERM, not the SIGKILL after 10 s
        exit_code = podman("inspect", "--format", "{{.State.ExitCode}}", name).stdout.strip()
        assert exit_code == "0"
    finally:
        podman("rm", "--force", name, check=False)
        podman.reset()
