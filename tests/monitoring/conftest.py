"""promtool and prometheus from Debian's `prometheus` package, installed through
scripts/ensure-debian-packages.sh (root, once); without them the tests that need them skip
on a laptop and fail in CI."""

import os
import shutil
import subprocess

import pytest

from tests.support.pulumi_render import REPO_ROOT


@pytest.fixture(scope="session")
def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        ensure = REPO_ROOT / "scripts" / "ensure-debian-packages.sh"
        done = subprocess.run([ensure, "prometheus"], capture_output=True, text=True, timeout=300)
        found = shutil.which("promtool")
        if found is None:
            message = f"promtool unavailable (Debian package prometheus): {done.stderr.strip()}"
            if os.environ.get("CI"):
                pytest.fail(message, pytrace=False)
            pytest.skip(message)
    return found


@pytest.fixture(scope="session")
def prometheus_binary(promtool: str) -> str:
    """The package ships both; promtool's fixture installed it."""
    found = shutil.which("prometheus")
    assert found is not None, "the prometheus package has promtool but no prometheus"
    return found
