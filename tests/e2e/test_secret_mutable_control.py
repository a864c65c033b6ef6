"""Control experiment: the rotation test can tell an in-place update from a replace.

The same rotation, with the component's provider built *without* enable_secret_mutable
(patched into a separate copy of the program), must plan a replace of the Secret. This
shows the real engine draws the line the design relies on, and that test_lifecycle's
"update, not replace" assertion would catch a regression of that flag.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.e2e.e2e_kube import Kube
from tests.e2e.e2e_pulumi import (
    FAKE_KEY,
    ROTATED_KEY,
    Workspace,
    copy_project,
    init_stack,
    write_stack_file,
)

pytestmark = pytest.mark.e2e

STACK = "immutable"
NS = "llm-gateway-immutable"
SECRET_TYPE = "kubernetes:core/v1:Secret"
FLAG = "enable_secret_mutable=True"


@pytest.fixture
def immutable_workspace(tmp_path: Path) -> Workspace:
    """A project copy whose own provider leaves Secrets immutable (the provider default)."""
    ws = Workspace(
        project=copy_project(tmp_path / "project"),
        home=tmp_path,
        bin_dir=Path(os.environ["LLM_GATEWAY_E2E_BIN"]),
        forbidden=[FAKE_KEY, ROTATED_KEY],
    )
    ws.backend_dir.mkdir()
    provider = ws.project / "components" / "provider.py"
    source = provider.read_text()
    assert FLAG in source, f"components/provider.py no longer passes {FLAG}; update this test"
    provider.write_text(source.replace(FLAG, "enable_secret_mutable=False"))
    return ws


def test_without_secret_mutable_rotation_is_a_replace(
    immutable_workspace: Workspace, kube: Kube, kubeconfig: str
) -> None:
    ws = immutable_workspace
    write_stack_file(ws, STACK, NS, {})
    init_stack(ws, STACK, kubeconfig)
    # PULUMI_K8S_ENABLE_SECRET_MUTABLE is stripped from the CLI's environment (Workspace.env).
    ws.run("up", "--yes", "--skip-preview", "--stack", STACK)
    try:
        ws.set_secret("openaiKey", ROTATED_KEY, STACK)
        plan = ws.run("preview", "--json", "--stack", STACK).json()
        secret_ops = {
            step["op"]
            for step in plan.get("steps", [])
            if (step.get("newState") or step.get("oldState") or {}).get("type") == SECRET_TYPE
        }
        assert "replace" in secret_ops, secret_ops
    finally:
        ws.run("destroy", "--yes", "--skip-preview", "--stack", STACK)
    assert kube.wait_gone("Namespace", NS, timeout=90)
