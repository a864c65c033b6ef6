"""Bad stack config: `pulumi up` fails with the package's message and creates nothing."""

from __future__ import annotations

import pytest

from tests.e2e.e2e_kube import Kube
from tests.e2e.e2e_pulumi import FAKE_KEY, Workspace, init_stack, write_stack_file

pytestmark = pytest.mark.e2e

CASES = {
    # stack: (config overrides on top of dev's, key set?, expected message lines)
    "bad-values": (
        {"proxy": {"replicas": -1}, "gateway": {"port": 99999}},
        True,
        [
            "stack config has 2 problem(s)",
            "llm-gateway:gateway.port:",
            "llm-gateway:proxy.replicas:",
        ],
    ),
    "no-key": ({}, False, ["llm-gateway:openaiKey: is required but not set"]),
}


@pytest.mark.parametrize("stack", sorted(CASES))
def test_bad_config_fails_clearly_and_creates_nothing(
    workspace: Workspace, kube: Kube, kubeconfig: str, stack: str
) -> None:
    overrides, with_key, expected = CASES[stack]
    namespace = f"llm-gateway-{stack}"
    write_stack_file(workspace, stack, namespace, overrides)
    init_stack(workspace, stack, kubeconfig, key=FAKE_KEY if with_key else None)

    result = workspace.run("up", "--yes", "--skip-preview", "--stack", stack, check=False)

    assert result.code != 0
    for line in expected:
        assert line in result.output, result.output[-4000:]
    assert "Traceback" not in result.output, "config errors must not surface as a traceback"
    assert kube.get("Namespace", namespace) is None
    state = workspace.run("stack", "export", "--stack", stack).json()
    types = {r["type"] for r in state["deployment"].get("resources") or []}
    assert not {t for t in types if t.startswith("kubernetes:")}, types
    workspace.run("stack", "rm", "--yes", "--force", "--stack", stack)
