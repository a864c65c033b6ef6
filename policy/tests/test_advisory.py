"""The advisory rules warn (never block), on the shapes the component declares for them."""

from analyzer import analyze, load_stack


def test_kill_switch_and_every_namespace_clients_warn_without_blocking() -> None:
    found = analyze(load_stack("dev-advisories"))
    assert {d.level for d in found} == {"advisory"}
    by_policy = {d.policy: d for d in found}
    assert set(by_policy) == {"kill-switch-engaged", "clients-from-every-namespace"}
    assert "kill switch is on" in by_policy["kill-switch-engaged"].message
    # Both data planes' NetworkPolicies admit every namespace.
    every = [d for d in found if d.policy == "clients-from-every-namespace"]
    assert len(every) == 2
    assert "namespaceLabels {}" in every[0].message


def test_a_proxy_scaled_to_zero_warns_without_the_component() -> None:
    stack = load_stack("dev")
    stack = [r for r in stack if r["type"] != "llm-gateway:index:LlmGateway"]
    deployment = next(r for r in stack if r["type"] == "kubernetes:apps/v1:Deployment")
    deployment["properties"]["spec"]["replicas"] = 0
    (found,) = analyze(stack)
    assert (found.policy, found.level) == ("kill-switch-engaged", "advisory")
    assert "0 replicas" in found.message
