"""LLM_PROXY_REQUIRE_KEY (set by the Deployment): no usable key at start → exit 1, saying why.

In a pod the line becomes the container's termination message, which `pulumi up` quotes.
"""

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from fakes.kubelet_secret_dir import KubeletSecretDir
from tests.proxy.proxy_process import launch
from tests.support.proxy import FAKE_KEY, ROOT


def start_failure(env_overrides: dict[str, str]) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLM_PROXY_")}
    env.update(env_overrides)
    return subprocess.run(
        [sys.executable, "-m", "proxy", "serve"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


@pytest.mark.parametrize("workers", ["1", "2"])
@pytest.mark.parametrize(
    ("content", "why"),
    [
        (None, "No such file or directory"),
        ("", "empty"),
        (f"{FAKE_KEY}\nsecond line", "whitespace or control characters inside the key"),
    ],
)
def test_no_usable_key_stops_the_start_with_one_line_why(
    proxy_env: dict[str, str], tmp_path: Path, content: str | None, why: str, workers: str
) -> None:
    key_file = tmp_path / "apiKey"
    if content is not None:
        key_file.write_text(content)
    env = {
        **proxy_env,
        "LLM_PROXY_KEY_FILE": str(key_file),
        "LLM_PROXY_REQUIRE_KEY": "true",
        "LLM_PROXY_WORKERS": workers,
    }
    done = start_failure(env)
    assert done.returncode == 1
    assert done.stdout == ""  # never listened
    (line,) = done.stderr.splitlines()
    assert line.startswith(f"llm-proxy: cannot start: no usable key in {key_file}: ")
    assert why in line
    assert "FAKEKEY" not in line  # the reason never quotes the content


def test_a_directory_is_not_a_key_file(proxy_env: dict[str, str], tmp_path: Path) -> None:
    env = {**proxy_env, "LLM_PROXY_KEY_FILE": str(tmp_path), "LLM_PROXY_REQUIRE_KEY": "true"}
    done = start_failure(env)
    assert done.returncode == 1
    assert done.stderr.rstrip().endswith(": not a regular file (LLM_PROXY_REQUIRE_KEY is set)")


def test_with_a_usable_key_it_serves_as_usual(
    proxy_env: dict[str, str], secret_dir: KubeletSecretDir
) -> None:
    proxy = launch({**proxy_env, "LLM_PROXY_REQUIRE_KEY": "true"}, ["serve"])
    try:
        ready = httpx.get(proxy.root_url + "/readyz").json()
        assert ready["status"] == "ready"
    finally:
        proxy.process.terminate()
        assert proxy.process.wait(timeout=30) == 0


def test_without_it_a_missing_key_only_makes_the_proxy_unready(
    proxy_env: dict[str, str], tmp_path: Path
) -> None:
    # On a laptop the key file may come later: the proxy starts and says it has no key.
    proxy = launch({**proxy_env, "LLM_PROXY_KEY_FILE": str(tmp_path / "absent")}, ["serve"])
    try:
        answer = httpx.get(proxy.root_url + "/readyz")
        assert answer.status_code == 503
    finally:
        proxy.process.terminate()
        proxy.process.wait(timeout=30)
