"""Every command the project's scripts start is in a base Debian system or ensured first.

On a new machine only what `scripts/ensure-debian-packages.sh` installs is there: a script that
starts `containerd` without ensuring the `containerd` package passes on a machine where somebody
installed it by hand and fails everywhere else. This test reads the scripts (shell and the
Python that starts processes) and fails on a command that no base package provides and that
neither the file itself, a script that runs it, nor its test package's conftest ensures.
"""

from __future__ import annotations

import copy
import functools
from pathlib import Path

import pytest

from tests.unit.script_commands import ScriptFacts, read_python, read_shell

ROOT = Path(__file__).resolve().parents[2]

# Packages of a minimal Debian system (debootstrap's required + important): always there.
BASE_PACKAGES = frozenset(
    str.split(
        "bash coreutils util-linux mount grep sed mawk findutils tar gzip procps dpkg apt "
        "debianutils diffutils hostname login ncurses-bin"
    )
)
# Where each command the scripts start comes from. A new command needs a line here, and its
# package ensured where it runs (unless it is in BASE_PACKAGES).
COMMAND_PACKAGE = {
    # base system
    "awk": "mawk", "basename": "coreutils", "cat": "coreutils", "chmod": "coreutils",
    "cp": "coreutils", "cut": "coreutils", "date": "coreutils", "dirname": "coreutils",
    "dpkg-query": "dpkg", "apt-get": "apt", "find": "findutils", "grep": "grep",
    "head": "coreutils", "id": "coreutils", "ln": "coreutils", "ls": "coreutils",
    "mkdir": "coreutils", "mktemp": "coreutils", "mv": "coreutils", "nproc": "coreutils",
    "realpath": "coreutils", "rm": "coreutils", "rmdir": "coreutils", "sed": "sed",
    "seq": "coreutils", "sha256sum": "coreutils", "sleep": "coreutils", "sort": "coreutils",
    "stat": "coreutils", "tail": "coreutils", "tar": "tar", "tee": "coreutils",
    "touch": "coreutils", "tr": "coreutils", "wc": "coreutils", "xargs": "findutils",
    "nsenter": "util-linux", "unshare": "util-linux", "umount": "mount", "mount": "mount",
    "sysctl": "procps", "gzip": "gzip", "sync": "coreutils", "install": "coreutils",
    "chown": "coreutils", "env": "coreutils", "uname": "coreutils", "printenv": "coreutils",
    "bash": "bash", "du": "coreutils", "cmp": "diffutils", "diff": "diffutils", "ps": "procps",
    # ensured by the scripts that need them
    "ip": "iproute2", "curl": "curl", "openssl": "openssl", "containerd": "containerd",
    "runc": "runc", "docker-registry": "docker-registry", "iptables": "iptables",
    "conntrack": "conntrack", "podman": "podman", "buildah": "buildah", "skopeo": "skopeo",
    "mmdebstrap": "mmdebstrap", "nginx": "nginx", "gcc": "gcc", "file": "file",
    "ipset": "ipset", "promtool": "prometheus", "prometheus": "prometheus",
    "jq": "jq", "npm": "npm",
}  # fmt: skip
# What a started program itself runs or loads at run time (not visible in the scripts).
RUNTIME_NEEDS = {
    "containerd": ("runc", "containernetworking-plugins"),  # the CRI's runtime and CNI plugins
    "kube-proxy": ("iptables", "conntrack"),
    "kubelet": ("iptables",),
    "kube-router": ("iptables", "ipset"),
}
# Preconditions the README names, and the tools scripts/e2e-toolchain.sh builds.
PRECONDITIONS = frozenset(
    str.split(
        "go make git python3 pulumi kubectl etcd kube-apiserver kube-controller-manager "
        "kube-scheduler kubelet kube-proxy coredns agentgateway-controller kube-router node"
    )
)


def shell_scripts() -> list[Path]:
    return sorted([*ROOT.glob("scripts/**/*.sh"), ROOT / ".ci" / "run"])


def python_sources() -> list[Path]:
    skip = {".venv", ".git", "node_modules"}
    return sorted(
        p for p in ROOT.rglob("*.py")
        if not skip & set(p.relative_to(ROOT).parts) and "subprocess" in p.read_text()
    )  # fmt: skip


def all_facts() -> dict[Path, ScriptFacts]:
    """A fresh copy each call (tests change what they get); the reading itself runs once."""
    return copy.deepcopy(_read_all())


@functools.cache
def _read_all() -> dict[Path, ScriptFacts]:
    facts = {p: read_shell(p) for p in shell_scripts()}
    facts.update({p: read_python(p) for p in python_sources()})
    return facts


def ensured_for(path: Path, facts: dict[Path, ScriptFacts]) -> set[str]:
    """Packages ensured by the file itself, by its test package's conftest.py, and by every
    script in a run that reaches it: each script that (transitively) runs this file, and
    every script those run. (A run's order is not checked: `cluster.sh` ensures skopeo
    through `build.sh` before `push.sh` needs it, inside a namespace with no apt.)"""
    names = {path.name}
    if path.suffix == ".py":
        names.add(str(path.parent.relative_to(ROOT)))
    by_name = {p.name: f for p, f in facts.items()}
    callers: set[str] = set()
    frontier = [f for f in facts.values() if names & f.runs]
    while frontier:
        caller = frontier.pop()
        if caller.path.name not in callers:
            callers.add(caller.path.name)
            frontier.extend(f for f in facts.values() if caller.path.name in f.runs)
    reached = set(callers)
    names_left = list(callers)
    while names_left:
        for run in by_name[names_left.pop()].runs:
            if run in by_name and run not in reached:
                reached.add(run)
                names_left.append(run)
    ensured = set(facts[path].ensured)
    for name in reached:
        ensured |= by_name[name].ensured
    conftest = facts.get(path.parent / "conftest.py")
    if path.suffix == ".py" and conftest is not None:
        ensured |= conftest.ensured
    return ensured


def missing_packages(facts: dict[Path, ScriptFacts]) -> list[str]:
    problems = []
    for path, fact in facts.items():
        ensured = ensured_for(path, facts)
        for command, line in sorted(fact.commands.items()):
            where = f"{path.relative_to(ROOT)}:{line}"
            for need in RUNTIME_NEEDS.get(command, ()):
                if need not in BASE_PACKAGES and need not in ensured:
                    problems.append(
                        f"{where} starts `{command}`, which needs the `{need}` package at run "
                        "time, but nothing ensures it: call scripts/ensure-debian-packages.sh "
                        f"{need} there"
                    )
            if command in PRECONDITIONS:
                continue
            package = COMMAND_PACKAGE.get(command)
            if package is None:
                problems.append(
                    f"{where} starts `{command}`, which COMMAND_PACKAGE does not know: add the "
                    "Debian package that provides it (dpkg -S $(command -v CMD))"
                )
            elif package not in BASE_PACKAGES and package not in ensured:
                problems.append(
                    f"{where} starts `{command}` but nothing ensures the `{package}` package "
                    f"before it: call scripts/ensure-debian-packages.sh {package} there"
                )
    return problems


def test_every_started_command_has_its_package_ensured() -> None:
    assert missing_packages(all_facts()) == []


def test_the_reader_sees_the_node_daemons() -> None:
    """Guard against a reader that finds nothing: the node's daemons are found as commands."""
    cluster = read_shell(ROOT / "scripts/e2e/cluster.sh")
    assert {"containerd", "docker-registry", "ip", "curl"} <= set(cluster.commands)
    assert {"containerd", "runc", "docker-registry", "iptables", "conntrack"} <= cluster.ensured
    podman = read_python(ROOT / "tests/image/podman.py")
    assert "podman" in podman.commands


@pytest.mark.parametrize(
    "package",
    ["containerd", "runc", "containernetworking-plugins", "docker-registry", "iptables",
     "conntrack", "curl", "openssl", "iproute2", "buildah", "skopeo", "podman", "mmdebstrap"],
)  # fmt: skip
def test_dropping_an_ensured_package_is_caught(package: str) -> None:
    """Take one package out of every ensure list: the check must then name it."""
    facts = all_facts()
    assert any(package in fact.ensured for fact in facts.values())
    assert not any(f"`{package}` package" in p for p in missing_packages(facts))
    for fact in facts.values():
        fact.ensured.discard(package)
    assert any(f"`{package}` package" in problem for problem in missing_packages(facts))
