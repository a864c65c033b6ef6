"""Drive the real `pulumi` CLI on a throwaway copy of the project, with no cloud and no network.

The copy keeps the repo's stack files untouched; its `.venv` is a symlink to the repo's
virtualenv (Pulumi.yaml's `virtualenv: .venv`). State lives in a local file backend and
secrets use the passphrase provider, so nothing leaves the machine.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
PROJECT_FILES = ("Pulumi.yaml", "__main__.py", "requirements.txt")
PROJECT_DIRS = ("components", "proxy", "stacks")
PASSPHRASE = "e2e-passphrase-not-a-secret"
FAKE_KEY = "sk-test-FAKEKEY-e2e-first-0123456789abcdef"
ROTATED_KEY = "sk-test-FAKEKEY-e2e-rotated-fedcba9876543210"
COMMAND_TIMEOUT_S = 240


class PulumiError(AssertionError):
    """A pulumi command that was expected to succeed failed; carries its output."""


@dataclass
class Result:
    """What one pulumi command returned."""

    args: list[str]
    code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def json(self) -> Any:
        return json.loads(self.stdout)


def _descendants(pid: int) -> list[int]:
    """Every live process below pid (read from /proc; plugins may have left its group)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _kill_tree(pid: int) -> None:
    """SIGKILL pid, its process group and every descendant."""
    victims = _descendants(pid)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
    for victim in [pid, *victims]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(victim, signal.SIGKILL)


def copy_project(dest: Path) -> Path:
    """Copy the Pulumi program into dest and link the repo's virtualenv; returns dest."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in PROJECT_FILES:
        shutil.copy2(REPO_ROOT / name, dest / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in PROJECT_DIRS:
        shutil.copytree(REPO_ROOT / name, dest / name, ignore=ignore, dirs_exist_ok=True)
    (dest / ".venv").symlink_to(REPO_ROOT / ".venv")
    return dest


@dataclass
class Workspace:
    """One project copy plus the environment every pulumi command in it runs with."""

    project: Path
    home: Path
    bin_dir: Path
    forbidden: list[str] = field(default_factory=list)
    log: list[Result] = field(default_factory=list)
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def backend_dir(self) -> Path:
        return self.home / "backend"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PULUMI_", "KUBE"))}
        env.update(
            PATH=f"{self.bin_dir}{os.pathsep}{env.get('PATH', '')}",
            PULUMI_HOME=str(self.home / "pulumi-home"),
            PULUMI_BACKEND_URL=f"file://{self.backend_dir}",
            PULUMI_CONFIG_PASSPHRASE=PASSPHRASE,
            PULUMI_SKIP_UPDATE_CHECK="true",
            PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION="true",
            PULUMI_AUTOMATION_API_SKIP_VERSION_CHECK="true",
            NO_COLOR="1",
        )
        env.update(self.extra_env)
        return env

    def run(self, *args: str, check: bool = True, stdin: str | None = None) -> Result:
        """Run `pulumi ARGS` in the project copy; fail on error unless check=False.

        Every output is scanned for the forbidden strings (the fake keys): none may leak.
        """
        argv = ["pulumi", *args, "--non-interactive"]
        # On a timeout the engine and its plugins (which it starts in their own process
        # groups) are all stopped, so a hung step never leaves orphans behind.
        with subprocess.Popen(
            argv,
            cwd=self.project,
            env=self.env(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        ) as proc:
            try:
                stdout, stderr = proc.communicate(stdin, timeout=COMMAND_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                _kill_tree(proc.pid)
                stdout, stderr = proc.communicate()
                stderr += f"\n[e2e] killed after {COMMAND_TIMEOUT_S}s"
        result = Result(list(args), proc.returncode, stdout, stderr)
        self.log.append(result)
        for secret in self.forbidden:
            if secret in result.output:
                raise PulumiError(f"`pulumi {' '.join(args)}` printed a secret in plaintext")
        if check and result.code != 0:
            raise PulumiError(
                f"`pulumi {' '.join(args)}` exited {result.code}\n{result.output[-6000:]}"
            )
        return result

    def set_secret(self, key: str, value: str, stack: str) -> None:
        """`pulumi config set --secret` with the value on stdin, so it never is an argument."""
        self.run("config", "set", "--secret", key, "--stack", stack, stdin=value)

    def state_files(self) -> list[Path]:
        """Every file the file backend wrote (checkpoints, backups, history)."""
        return [p for p in self.backend_dir.rglob("*") if p.is_file()]


def init_stack(ws: Workspace, stack: str, kubeconfig: str, key: str | None = FAKE_KEY) -> None:
    """Create `stack` (passphrase secrets) and point it at the e2e API server.

    The stack file in the copy already holds the repo's settings for `stack` (if any);
    only skipAwait (these scenarios are about the API objects; tests/e2e/test_node.py and
    test_live_traffic.py await real pods), the kubeconfig, the image and the key are added.
    """
    ws.run("stack", "init", stack, "--secrets-provider", "passphrase")
    ws.run("config", "set", "--stack", stack, "skipAwait", "true")
    ws.run("config", "set", "--stack", stack, "kubeconfig", kubeconfig)
    # The stack files name no image (none is published): the one built for the node, or
    # any well-formed reference when there is no node (nothing runs it under skipAwait).
    image = os.environ.get("LLM_GATEWAY_NODE_PROXY_IMAGE", "registry.invalid/llm-proxy:e2e")
    ws.run("config", "set", "--path", "--stack", stack, "proxy.image", image)
    if key is not None:
        ws.set_secret("openaiKey", key, stack)


def write_stack_file(ws: Workspace, stack: str, namespace: str, overrides: dict[str, Any]) -> None:
    """dev's settings, a namespace of its own, and the overrides merged per top-level key."""
    # The repo's dev file, not the copy's: earlier scenarios add skipAwait and more to it.
    stacks = ws.project / "stacks"
    config = yaml.safe_load((REPO_ROOT / "stacks" / "Pulumi.dev.yaml").read_text())["config"]
    config = {k: v for k, v in config.items() if k.startswith("llm-gateway:")}
    config.pop("llm-gateway:openaiKey", None)
    config["llm-gateway:namespace"] = namespace
    for key, value in overrides.items():
        merged = dict(config.get(f"llm-gateway:{key}", {}))
        merged.update(value)
        config[f"llm-gateway:{key}"] = merged
    (stacks / f"Pulumi.{stack}.yaml").write_text(yaml.safe_dump({"config": config}))


SMOKE_TIMEOUT_S = 300


def run_smoke_output(ws: Workspace, stack: str) -> subprocess.CompletedProcess[str]:
    """`bash -ec "$(pulumi stack output smokeTest)"`, exactly as the README tells users.

    Its output is scanned for the forbidden strings (the fake keys), like every command's.
    """
    smoke = ws.run("stack", "output", "smokeTest", "--stack", stack).stdout.strip()
    done = subprocess.run(
        ["bash", "-ec", smoke],
        env=ws.env(),
        capture_output=True,
        text=True,
        timeout=SMOKE_TIMEOUT_S,
        check=False,
    )
    for secret in ws.forbidden:
        if secret in done.stdout + done.stderr:
            raise PulumiError("the smoke output printed a secret in plaintext")
    return done
