"""The policy pack (policy/) judges what the component really declares.

Its own tests run in its own virtualenv (`make policy-test`) on stacks rendered from the
component; these check, in the program's virtualenv, that those renderings are current
and that the pack's names for the gateway's objects are the component's.
"""

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

from components.llm_gateway import COMPONENT_TYPE
from components.llm_proxy import PROXY_NAME
from components.shapes import gateway as gateway_shape
from components.shapes import meta
from tests.support.pulumi_render import REPO_ROOT, render_stack
from tests.unit import policy_stack_fixture


def _selectors() -> ModuleType:
    """policy/guardrails/selectors.py, which imports nothing from pulumi_policy."""
    path = Path(REPO_ROOT / "policy" / "guardrails" / "selectors.py")
    spec = importlib.util.spec_from_file_location("policy_selectors", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("fixture", sorted(policy_stack_fixture.STACKS))
def test_the_stacks_the_policy_tests_judge_are_what_the_component_declares(fixture: str) -> None:
    current = policy_stack_fixture.fixture_text(fixture)
    path = policy_stack_fixture.fixture_path(fixture)
    assert path.read_text() == current, (
        f"{path.relative_to(REPO_ROOT)} is stale: `.venv/bin/python -m "
        "tests.unit.policy_stack_fixture` regenerates it"
    )
    assert "FAKEKEY" not in current  # the key Secret's data is redacted


def test_the_packs_names_are_the_components() -> None:
    selectors = _selectors()
    assert COMPONENT_TYPE.split(":")[0] == selectors.PACKAGE
    assert selectors.COMPONENT_TYPE == COMPONENT_TYPE
    assert meta.labels("x")[selectors.PART_OF_LABEL] == selectors.PACKAGE
    assert selectors.PROXY_NAME == PROXY_NAME
    assert meta.selector(PROXY_NAME) == {selectors.NAME_LABEL: PROXY_NAME}
    assert gateway_shape.data_plane_selector("gw") == {selectors.GATEWAY_NAME_LABEL: "gw"}


def test_every_type_the_pack_matches_is_a_type_the_component_declares() -> None:
    selectors = _selectors()
    declared = {r.typ for r in render_stack("dev", overrides={"smokeTest.onUp": True}).resources}
    matched = {
        selectors.GATEWAY_TYPE,
        selectors.DEPLOYMENT_TYPE,
        selectors.JOB_TYPE,
        selectors.SECRET_TYPE,
        selectors.SERVICE_TYPE,
        selectors.NETWORK_POLICY_TYPE,
        selectors.COMPONENT_TYPE,
    }
    assert matched <= declared, matched - declared
