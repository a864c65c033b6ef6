"""Rotation and kill switch: render twice and diff every resource."""

import pytest

from proxy.fingerprint import key_fingerprint
from tests.support.pulumi_render import STACKS, diff, fake_key, render_stack, without


@pytest.mark.parametrize("stack", STACKS)
def test_rotation_changes_only_the_secret_data(stack: str) -> None:
    old = render_stack(stack, key=fake_key(f"{stack}-old"))
    new = render_stack(stack, key=fake_key(f"{stack}-new"))
    assert diff(old, new) == {("kubernetes:core/v1:Secret", "llm-gateway-key"): ["data.apiKey"]}
    assert old.outputs["keyFingerprint"] == key_fingerprint(fake_key(f"{stack}-old"))
    assert new.outputs["keyFingerprint"] == key_fingerprint(fake_key(f"{stack}-new"))
    assert old.outputs["keyFingerprint"] != new.outputs["keyFingerprint"]
    assert new.one("Secret").secret_paths == ("data",)


@pytest.mark.parametrize("stack", STACKS)
def test_kill_switch_removes_only_the_route_and_scales_the_proxy_to_zero(stack: str) -> None:
    live = render_stack(stack)
    killed = render_stack(stack, overrides={"killSwitch": True})
    assert diff(live, killed) == {
        ("kubernetes:apps/v1:Deployment", "llm-gateway-proxy"): ["spec.replicas"],
        ("kubernetes:gateway.networking.k8s.io/v1:HTTPRoute", "llm-gateway-route"): ["<removed>"],
    }
    assert killed.one("Deployment").inputs["spec"]["replicas"] == 0
    assert killed.outputs["killSwitch"] is True
    changed = ("killSwitch", "smokeTest")
    assert {k: v for k, v in killed.outputs.items() if k not in changed} == {
        k: v for k, v in live.outputs.items() if k not in changed
    }
    assert "killSwitch is on" in killed.outputs["smokeTest"]


def test_restoring_after_the_kill_switch_renders_the_original_again() -> None:
    never_killed = render_stack("prod", overrides=without("killSwitch"))
    killed = render_stack("prod", overrides={"killSwitch": True})
    restored = render_stack("prod", overrides={"killSwitch": False})
    # Restoring undoes exactly what the kill switch did...
    assert diff(killed, restored) == {
        ("kubernetes:apps/v1:Deployment", "llm-gateway-proxy"): ["spec.replicas"],
        ("kubernetes:gateway.networking.k8s.io/v1:HTTPRoute", "llm-gateway-route"): ["<added>"],
    }
    assert restored.one("Deployment").inputs["spec"]["replicas"] == 3
    # ...and leaves the stack as if it had never been killed.
    assert diff(never_killed, restored) == {}
    assert restored.outputs == never_killed.outputs


def test_kill_switch_with_only_the_proxy_enabled_still_scales_it_down() -> None:
    killed = render_stack("dev", overrides={"killSwitch": True, "agentgateway.enabled": False})
    assert killed.one("Deployment").inputs["spec"]["replicas"] == 0
