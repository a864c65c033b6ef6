"""proxy/requirements.txt alone (hashes required) gives a venv that serves.

The Dockerfile installs exactly this file the same way; tests/image builds the real image
(as root, in `make e2e`), and this keeps the check in `make test` without root.
Slow-ish (a venv + pip install, pip's cache makes reruns quick), so it is marked `slow`
but stays in the normal run.
"""

import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.proxy.proxy_process import launch
from tests.support.proxy import FAKE_KEY, ROOT, Upstream

pytestmark = pytest.mark.slow


def test_clean_virtualenv_from_requirements_serves_requests(
    tmp_path: Path, proxy_env: dict[str, str], upstream: Upstream
) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = str(venv / "bin" / "python")
    install = subprocess.run(
        [python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
         "--require-hashes", "--only-binary", ":all:", "-r", str(ROOT / "proxy/requirements.txt")],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert install.returncode == 0, install.stderr[-2000:]

    proxy = launch(proxy_env, ["serve"], python=python)
    try:
        response = httpx.post(
            proxy.root_url + "/v1/chat/completions",
            json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
        )
        assert response.status_code == 200
        assert response.json()["choices"][0]["message"]["content"] == "pong"
        assert upstream.fake.seen.authorizations == [f"Bearer {FAKE_KEY}"]
        smoke = subprocess.run(
            [python, "-m", "proxy", "smoke", "--url", proxy.root_url + "/v1"],
            cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert smoke.returncode == 0, smoke.stdout + smoke.stderr
    finally:
        proxy.process.terminate()
        assert proxy.process.wait(timeout=15) == 0
