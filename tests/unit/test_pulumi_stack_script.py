"""scripts/pulumi-stack.sh is a convenience that never overrides the user's own backend
or secrets provider; driven here with a fake `pulumi` that records what it was asked."""

import os
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "pulumi-stack.sh"
FAKE_PULUMI = Path(__file__).with_name("fake_pulumi.sh")


def run_script(tmp_path: Path, **env: str) -> list[str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    fake = bin_dir / "pulumi"
    fake.write_text(FAKE_PULUMI.read_text())
    fake.chmod(0o755)
    calls = tmp_path / "calls"
    base = {k: v for k, v in os.environ.items() if not k.startswith(("PULUMI_", "SECRETS_"))}
    base.update(
        PATH=f"{bin_dir}:{os.environ['PATH']}",
        HOME=str(tmp_path),
        PULUMI_CALLS=str(calls),
        STACK="dev",
        **env,
    )
    subprocess.run(["bash", str(SCRIPT), "up"], env=base, check=True, timeout=30)
    return calls.read_text().splitlines()


def test_a_logged_in_backend_is_kept(tmp_path: Path) -> None:
    calls = run_script(tmp_path, FAKE_LOGGED_IN_RC="0")
    assert all(call.endswith("backend=<unset>") for call in calls), calls
    assert calls[-1].startswith("up |")


def test_an_explicit_backend_url_is_kept(tmp_path: Path) -> None:
    calls = run_script(tmp_path, PULUMI_BACKEND_URL="s3://team-state", FAKE_LOGGED_IN_RC="1")
    assert all(call.endswith("backend=s3://team-state") for call in calls), calls


def test_a_local_file_backend_only_when_there_is_none(tmp_path: Path) -> None:
    calls = run_script(tmp_path, FAKE_LOGGED_IN_RC="1")
    assert calls[-1] == f"up | backend=file://{tmp_path}/.pulumi-llm-gateway"


@pytest.mark.parametrize(
    ("env", "init"),
    [
        ({}, "stack init dev"),
        ({"SECRETS_PROVIDER": "awskms://alias/llm"}, "stack init dev --secrets-provider awskms"),
    ],
)
def test_a_new_stack_gets_pulumis_default_secrets_provider_unless_asked(
    tmp_path: Path, env: dict[str, str], init: str
) -> None:
    calls = run_script(tmp_path, **env)
    (created,) = [c for c in calls if c.startswith("stack init")]
    assert created.startswith(init)
    if not env:
        assert "--secrets-provider" not in created


def test_an_existing_stack_is_only_selected(tmp_path: Path) -> None:
    calls = run_script(tmp_path, FAKE_STACK_EXISTS_RC="0")
    assert not [c for c in calls if c.startswith("stack init")]
