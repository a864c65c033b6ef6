"""The image tests build and run a container image (root, buildah, podman, runc; minutes cold).

They run only when selected: `pytest -m image tests/image`. Any other run (`make test` is
`pytest -m "not e2e"`) reports them as skipped instead of building an image.
"""

import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if "image" in (config.option.markexpr or ""):
        # What these tests start besides the image scripts (which ensure their own): a new
        # machine has none of it until the project's script installs it.
        subprocess.run(
            [str(ROOT / "scripts/ensure-debian-packages.sh"), "podman", "runc", "docker-registry",
             "skopeo", "file"],
            check=True,
        )  # fmt: skip
        return
    skip = pytest.mark.skip(reason="builds and runs the proxy image as root: select with -m image")
    for item in items:
        if item.get_closest_marker("image") is not None:
            item.add_marker(skip)
