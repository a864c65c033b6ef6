"""Each mandatory rule: a deliberately broken stack fails naming the rule, the real
component's stack does not (test_pack.py)."""

from typing import Any

from analyzer import Diagnostic, analyze, find, load_stack

SECRET = "kubernetes:core/v1:Secret"
SERVICE = "kubernetes:core/v1:Service"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
JOB = "kubernetes:batch/v1:Job"
NETWORK_POLICY = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
OUTSIDE_URN = "urn:pulumi:dev::other-app::{type}::{name}"


def only(found: list[Diagnostic], policy: str) -> list[Diagnostic]:
    """The diagnostics, asserting every one is from `policy` at the mandatory level."""
    assert found, f"expected {policy} to fail"
    assert {(d.policy, d.level) for d in found} == {(policy, "mandatory")}, found
    return found


def test_a_key_secret_on_a_provider_without_enable_secret_mutable_fails() -> None:
    stack = load_stack("dev")
    find(stack, SECRET)["provider"]["properties"].pop("enableSecretMutable")
    (found,) = only(analyze(stack), "key-secret-updated-in-place")
    assert "openai-api-key" in found.message
    assert "enableSecretMutable" in found.message


def test_a_key_secret_on_the_default_provider_fails() -> None:
    stack = load_stack("dev")
    find(stack, SECRET)["provider"] = {
        "type": "pulumi:providers:kubernetes",
        "urn": "urn:pulumi:dev::llm-gateway::pulumi:providers:kubernetes::default_4_34_2",
        "name": "default_4_34_2",
        "properties": {"version": "4.34.2"},
    }
    only(analyze(stack), "key-secret-updated-in-place")


def _hand_written_secret(labels: dict[str, str]) -> dict[str, Any]:
    return {
        "type": SECRET,
        "urn": OUTSIDE_URN.format(type=SECRET, name="key"),
        "name": "key",
        "properties": {"metadata": {"name": "openai-api-key", "labels": labels}},
        "provider": None,
    }


def test_a_hand_written_secret_labelled_part_of_the_gateway_is_held_to_the_rule() -> None:
    found = analyze([_hand_written_secret({"app.kubernetes.io/part-of": "llm-gateway"})])
    only(found, "key-secret-updated-in-place")


def test_a_secret_of_another_app_is_none_of_the_packs_business() -> None:
    assert analyze([_hand_written_secret({"app.kubernetes.io/part-of": "web"})]) == []


def test_an_immutable_key_secret_fails() -> None:
    stack = load_stack("dev")
    find(stack, SECRET)["properties"]["immutable"] = True
    (found,) = only(analyze(stack), "key-secret-not-immutable")
    assert "immutable" in found.message


def test_a_load_balancer_or_node_port_in_front_of_the_proxy_fails() -> None:
    for kind in ("LoadBalancer", "NodePort"):
        stack = load_stack("dev")
        find(stack, SERVICE)["properties"]["spec"]["type"] = kind
        (found,) = only(analyze(stack), "no-external-service-for-data-plane")
        assert kind in found.message


def _outside_service(kind: str, selector: dict[str, str]) -> dict[str, Any]:
    return {
        "type": SERVICE,
        "urn": OUTSIDE_URN.format(type=SERVICE, name="exposed"),
        "name": "exposed",
        "properties": {
            "metadata": {"name": "exposed"},
            "spec": {"type": kind, "selector": selector},
        },
    }


def test_another_programs_load_balancer_selecting_a_data_plane_fails() -> None:
    for selector in (
        {"app.kubernetes.io/name": "llm-proxy"},
        {"gateway.networking.k8s.io/gateway-name": "llm-gateway"},
    ):
        only(
            analyze([_outside_service("LoadBalancer", selector)]),
            "no-external-service-for-data-plane",
        )


def test_a_load_balancer_for_another_app_or_a_cluster_ip_passes() -> None:
    assert analyze([_outside_service("LoadBalancer", {"app": "web"})]) == []
    assert analyze([_outside_service("ClusterIP", {"app.kubernetes.io/name": "llm-proxy"})]) == []


def _drop(stack: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [r for r in stack if not (r["type"] == NETWORK_POLICY and r["name"] == name)]


def test_a_proxy_without_its_network_policy_fails() -> None:
    stack = _drop(load_stack("dev"), "llm-gateway-proxy-netpol")
    (found,) = only(analyze(stack), "data-plane-has-network-policy")
    assert "proxy data plane 'llm-proxy'" in found.message
    assert found.urn == find(stack, DEPLOYMENT)["urn"]


def test_an_agentgateway_gateway_without_its_network_policy_fails() -> None:
    stack = _drop(load_stack("dev"), "llm-gateway-gateway-netpol")
    (found,) = only(analyze(stack), "data-plane-has-network-policy")
    assert "agentgateway data plane 'llm-gateway'" in found.message


def test_a_network_policy_in_another_namespace_does_not_count() -> None:
    stack = load_stack("dev")
    find(stack, NETWORK_POLICY, "llm-gateway-proxy-netpol")["properties"]["metadata"][
        "namespace"
    ] = "elsewhere"
    (found,) = only(analyze(stack), "data-plane-has-network-policy")
    assert "llm-proxy" in found.message


def test_an_egress_only_policy_does_not_count() -> None:
    stack = load_stack("dev")
    policy = find(stack, NETWORK_POLICY, "llm-gateway-proxy-netpol")["properties"]["spec"]
    policy["policyTypes"] = ["Egress"]
    only(analyze(stack), "data-plane-has-network-policy")


def test_a_prod_proxy_image_by_tag_fails() -> None:
    stack = load_stack("prod")
    container = find(stack, DEPLOYMENT)["properties"]["spec"]["template"]["spec"]["containers"][0]
    container["image"] = "registry.example.com/llm-proxy:test"
    (found,) = only(analyze(stack), "proxy-image-pinned-in-prod")
    assert "registry.example.com/llm-proxy:test" in found.message
    assert "proxy.imageDigest" in found.message


def test_a_proxy_container_without_a_memory_limit_fails() -> None:
    stack = load_stack("dev")
    container = find(stack, DEPLOYMENT)["properties"]["spec"]["template"]["spec"]["containers"][0]
    del container["resources"]["limits"]["memory"]
    (found,) = only(analyze(stack), "resource-limits-set")
    assert "memory limit" in found.message


def test_a_smoke_job_without_limits_fails() -> None:
    stack = load_stack("dev")
    job = next(r for r in stack if r["type"] == JOB)
    del job["properties"]["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]
    (found,) = only(analyze(stack), "resource-limits-set")
    assert "cpu or memory" in found.message
