"""The pack as a whole: its rules and levels, and the real component's stacks pass it."""

import pytest
from analyzer import analyze, load_stack, servicer
from pulumi.runtime.proto import analyzer_pb2 as proto

MANDATORY = {
    "key-secret-updated-in-place",
    "key-secret-not-immutable",
    "no-external-service-for-data-plane",
    "data-plane-has-network-policy",
    "proxy-image-pinned-in-prod",
    "resource-limits-set",
}
ADVISORY = {"kill-switch-engaged", "clients-from-every-namespace"}


def test_the_pack_declares_every_rule_at_its_level() -> None:
    info = servicer().GetAnalyzerInfo(None, None)  # type: ignore[no-untyped-call]
    levels = {p.name: proto.EnforcementLevel.Name(p.enforcementLevel) for p in info.policies}
    assert levels == {
        **dict.fromkeys(MANDATORY, "MANDATORY"),
        **dict.fromkeys(ADVISORY, "ADVISORY"),
    }
    assert info.name == "llm-gateway-guardrails"


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_the_components_own_stacks_pass_every_rule(stack: str) -> None:
    resources = load_stack(stack)
    assert any(r["type"] == "kubernetes:core/v1:Secret" for r in resources)
    assert analyze(resources) == []


def test_the_prod_pattern_is_configurable_and_reaches_the_rule() -> None:
    dev = load_stack("dev")  # images carry a tag, no digest
    assert analyze(dev) == []
    found = analyze(dev, config={"proxy-image-pinned-in-prod": {"prodStackPattern": "^dev$"}})
    assert {d.policy for d in found} == {"proxy-image-pinned-in-prod"}
    # The proxy Deployment and each smoke Job run the proxy image.
    assert len(found) >= 2
