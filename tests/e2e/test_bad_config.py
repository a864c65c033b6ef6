"""Bad stack config: `pulumi up` fails with the package's message and creates nothing."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from tests.e2e.e2e_kube import Kube
from tests.e2e.e2e_pulumi import FAKE_KEY, Workspace, init_stack

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


def _write_stack_file(ws: Workspace, stack: str, namespace: str, overrides: dict[str, Any]) -> None:
    """dev's settings, a namespace of its own, and the overrides merged per top-level key."""
    stacks = ws.project / "stacks"
    config = yaml.safe_load((stacks / "Pulumi.dev.yaml").read_text())["config"]
    config = {k: v for k, v in config.items() if k.startswith("llm-gateway:")}
    config.pop("llm-gateway:openaiKey", None)
    config["llm-gateway:namespace"] = namespace
    for key, value in overrides.items():
        merged = dict(config.get(f"llm-gateway:{key}", {}))
        merged.update(value)
        config[f"llm-gateway:{key}"] = merged
    (stacks / f"Pulumi.{stack}.yaml").write_text(yaml.safe_dump({"config": config}))


@pytest.mark.parametrize("stack", sorted(CASES))
def test_bad_config_fails_clearly_and_creates_nothing(
    workspace: Workspace, kube: Kube, kubeconfig: str, stack: str
) -> None:
    overrides, with_key, expected = CASES[stack]
    namespace = f"llm-gateway-{stack}"
    _write_stack_file(workspace, stack, namespace, overrides)
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
