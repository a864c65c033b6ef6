"""Tests stand alone, and nothing outside tests/ leans on them.

- No module under tests/ imports a test module (test_*.py): a helper two suites need lives in
  tests/support/, where a change to one test file cannot break another.
- A suite (tests/unit, tests/proxy, ...) imports from tests/ only itself and tests/support/;
  tests/support/ imports no suite.
- The program, the proxy, the fakes, the bench and the scripts import nothing from tests/, and
  no script runs a module or file of it: `make demo` and `make bench` work without the test tree.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# Everything that ships or runs outside pytest; tests/ and policy/tests are the tests.
OUTSIDE_TESTS = ("__main__.py", "bench", "components", "fakes", "package", "proxy", "scripts")
# A script that starts Python from tests/ (`python -m tests.x`, `python tests/x.py`).
RUNS_TESTS = re.compile(r"-m\s+tests\.|(?<![\w/])tests/[\w/]+\.py\b")


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(path: Path, root: Path) -> Iterator[tuple[int, str]]:
    """(line, module) for every import in the file, function-level ones included."""
    package = module_name(path, root).split(".")
    if path.name != "__init__.py":
        package.pop()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package[: len(package) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            yield node.lineno, base
            # `from tests.proxy import test_errors` imports a module too.
            for alias in node.names:
                yield node.lineno, f"{base}.{alias.name}"


def is_test_module(module: str) -> bool:
    return module.startswith("tests.") and module.rsplit(".", 1)[-1].startswith("test_")


def python_files(root: Path, *tops: str) -> Iterator[Path]:
    for top in tops:
        path = root / top
        if path.is_file():
            yield path
        elif path.is_dir():
            yield from (p for p in sorted(path.rglob("*.py")) if ".venv" not in p.parts)


def layout_violations(root: Path) -> list[str]:
    """Every import or script line that breaks the rules above, as `path:line: why`."""
    found: dict[tuple[Path, int], str] = {}  # one finding per statement or line

    def flag(path: Path, line: int, why: str) -> None:
        found.setdefault((path, line), f"{path.relative_to(root)}:{line}: {why}")

    for path in python_files(root, "tests"):
        where = path.relative_to(root)
        suite = where.parts[1] if len(where.parts) > 2 else None
        for line, module in imported_modules(path, root):
            if not module.startswith("tests."):
                continue
            if is_test_module(module):
                flag(
                    path,
                    line,
                    f"imports the test module {module}; move what it needs to tests/support/",
                )
            elif module.split(".")[1] not in ("support", suite):
                who = "tests/support" if suite == "support" else "a suite"
                flag(
                    path,
                    line,
                    f"{who} imports {module} from another suite; shared helpers "
                    "go in tests/support/",
                )
    for path in python_files(root, *OUTSIDE_TESTS):
        for line, module in imported_modules(path, root):
            if module == "tests" or module.startswith("tests."):
                flag(
                    path,
                    line,
                    f"imports {module}: code outside tests/ must not need the "
                    "test tree (fakes live in fakes/)",
                )
    for path in [root / "Makefile", *sorted((root / "scripts").rglob("*.sh"))]:
        if not path.is_file():
            continue
        for line, text in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not text.lstrip().startswith("#") and RUNS_TESTS.search(text):
                flag(
                    path,
                    line,
                    "runs Python from tests/: the demo and the bench must work "
                    "without the test tree",
                )
    return list(found.values())


def test_the_repo_keeps_its_import_boundaries() -> None:
    assert layout_violations(ROOT) == []


SAMPLES = {
    # (file, text, violation expected on line 1 or 2)
    "tests/proxy/test_a.py": ("from tests.proxy.test_b import helper\n", True),
    "tests/proxy/test_c.py": ("def f():\n    from tests.unit import test_d\n", True),
    "tests/proxy/test_e.py": ("from .test_b import helper\n", True),
    "tests/manifests/variants.py": ("from tests.unit.render import render\n", True),
    "tests/support/shared.py": ("from tests.proxy.conftest import proxy\n", True),
    "bench/run.py": ("from tests.support.proxy import FAKE_KEY\n", True),
    "fakes/up.py": ("import tests.support.net\n", True),
    "scripts/node.sh": ('"$python" -m tests.e2e.node_upstream --port 1\n', True),
    "Makefile": ("demo:\n\tpython tests/e2e/upstream.py\n", True),
    "tests/proxy/test_ok.py": (
        "from tests.proxy.local_helper import x\nfrom tests.support.net import free_port\n",
        False,
    ),
    "tests/proxy/local_helper.py": ("from . import conftest\n", False),
    "tests/support/net.py": ("from tests.support import proxy\n", False),
    "proxy/app.py": ("from proxy.fingerprint import key_fingerprint\n", False),
    "scripts/e2e.sh": ("# python -m tests.x is how it was\npytest -m e2e tests/e2e\n", False),
}


def test_each_rule_catches_what_it_forbids(tmp_path: Path) -> None:
    for name, (text, _) in SAMPLES.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    found = layout_violations(tmp_path)
    flagged = {line.split(":", 1)[0] for line in found}
    assert flagged == {name for name, (_, bad) in SAMPLES.items() if bad}, found
    assert len(found) == len(flagged), found  # one finding each
    by_file = {line.split(":", 1)[0]: line for line in found}
    assert "move what it needs to tests/support/" in by_file["tests/proxy/test_e.py"]
    assert "from another suite" in by_file["tests/manifests/variants.py"]
    assert "tests/support imports tests.proxy.conftest" in by_file["tests/support/shared.py"]
    assert "fakes live in fakes/" in by_file["bench/run.py"]
    assert "runs Python from tests/" in by_file["scripts/node.sh"]
