"""LlmGateway as a library: passed-in providers, options pass-through, per-stack knobs."""

import shlex
from collections.abc import Callable
from pathlib import Path

import pulumi
import pulumi_kubernetes as k8s
import pytest
from pydantic import ValidationError

from components import (
    LlmGateway,
    LlmGatewayArgs,
    LlmGatewayConfig,
    ProxyConfig,
    SecretMutabilityError,
    mark_secret_mutable,
    secret_mutable_provider,
)
from tests.support.pulumi_render import (
    TEST_IMAGE,
    Rendered,
    fake_key,
    render,
    render_stack,
    without,
)

KEY = fake_key("library")


def library_config() -> LlmGatewayConfig:
    """Defaults plus the one key without a default while the proxy is on: its image."""
    return LlmGatewayConfig(proxy=ProxyConfig(image=TEST_IMAGE))


def run_library(
    build_provider: Callable[[], k8s.Provider],
    *,
    env: dict[str, str] | None = None,
    expect_error: bool = False,
) -> Rendered:
    """Render a program that builds its own provider and hands it to LlmGateway."""

    def program() -> None:
        provider = build_provider()
        LlmGateway(
            "app-llm",
            LlmGatewayArgs(config=library_config(), openai_key=KEY, provider=provider),
        )

    return render({}, env=env, expect_error=expect_error, program=program)


def test_a_plain_provider_without_the_flag_is_refused_before_any_child_exists() -> None:
    result = run_library(lambda: k8s.Provider("plain"), expect_error=True)
    assert isinstance(result.error, SecretMutabilityError)
    assert "enable_secret_mutable=True" in str(result.error)
    assert "secret_mutable_provider" in str(result.error)
    assert not [r for r in result.resources if r.typ.startswith("kubernetes:")]


def test_secret_mutable_provider_is_accepted_and_used_for_every_object() -> None:
    result = run_library(lambda: secret_mutable_provider("mine", context="kind-llm"))
    (provider,) = result.of_type("pulumi:providers:kubernetes")
    assert provider.name == "mine"
    assert provider.inputs["enableSecretMutable"] == "true"
    assert provider.inputs["context"] == "kind-llm"
    objects = result.k8s_objects()
    assert len(objects) == 12  # with the proxy's Role and RoleBinding (keySource api)
    assert all(obj.provider.startswith(provider.urn + "::") for obj in objects)


def test_a_provider_the_caller_vouches_for_is_accepted() -> None:
    result = run_library(
        lambda: mark_secret_mutable(k8s.Provider("vouched", enable_secret_mutable=True))
    )
    assert result.error is None
    assert result.one("Secret").provider.split("::")[-2] == "vouched"


def test_the_environment_flag_makes_any_provider_acceptable() -> None:
    result = run_library(
        lambda: k8s.Provider("from-env"), env={"PULUMI_K8S_ENABLE_SECRET_MUTABLE": "true"}
    )
    assert result.error is None
    (provider,) = result.of_type("pulumi:providers:kubernetes")
    # The SDK itself falls back to the variable, so the flag really reaches the provider.
    assert provider.inputs["enableSecretMutable"] == "true"


def run_with_provider_in_opts(
    build_opts: Callable[[k8s.Provider], pulumi.ResourceOptions],
    build_provider: Callable[[], k8s.Provider],
    *,
    expect_error: bool = False,
) -> Rendered:
    """Render a program that hands its provider over the usual Pulumi way: resource options."""

    def program() -> None:
        opts = build_opts(build_provider())
        LlmGateway("app-llm", LlmGatewayArgs(config=library_config(), openai_key=KEY), opts=opts)

    return render({}, expect_error=expect_error, program=program)


PROVIDER_OPTS: dict[str, Callable[[k8s.Provider], pulumi.ResourceOptions]] = {
    "provider": lambda p: pulumi.ResourceOptions(provider=p),
    "providers-list": lambda p: pulumi.ResourceOptions(providers=[p]),
    "providers-map": lambda p: pulumi.ResourceOptions(providers={"kubernetes": p}),
}


@pytest.mark.parametrize("how", sorted(PROVIDER_OPTS))
def test_a_provider_passed_in_resource_options_is_used_not_replaced(how: str) -> None:
    # Otherwise the stack's objects would silently go to the ambient kubeconfig's cluster.
    result = run_with_provider_in_opts(
        PROVIDER_OPTS[how], lambda: secret_mutable_provider("mine", context="team-cluster")
    )
    (provider,) = result.of_type("pulumi:providers:kubernetes")
    assert provider.name == "mine"
    assert all(obj.provider.startswith(provider.urn + "::") for obj in result.k8s_objects())


@pytest.mark.parametrize("how", sorted(PROVIDER_OPTS))
def test_a_plain_provider_in_resource_options_is_refused(how: str) -> None:
    result = run_with_provider_in_opts(
        PROVIDER_OPTS[how], lambda: k8s.Provider("plain"), expect_error=True
    )
    assert isinstance(result.error, SecretMutabilityError)
    assert not [r for r in result.resources if r.typ.startswith("kubernetes:")]


def test_the_stack_provider_takes_kubeconfig_and_context_from_config(tmp_path: Path) -> None:
    # A path that does not exist here, so the smoke commands carry only --context.
    kubeconfig = str(tmp_path / "kubeconfig")
    result = render_stack("dev", overrides={"kubeconfig": kubeconfig, "context": "kind-llm"})
    (provider,) = result.of_type("pulumi:providers:kubernetes")
    assert provider.inputs == {
        "enableSecretMutable": "true",
        "kubeconfig": kubeconfig,
        "context": "kind-llm",
    }
    # A kubeconfig may be inline YAML with credentials: it is stored encrypted.
    assert provider.secret_paths == ("kubeconfig",)
    assert result.outputs["smokeTest"].startswith("kubectl --context kind-llm run ")


def test_smoke_commands_use_the_kubeconfig_file_the_provider_uses(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "team kubeconfig"
    kubeconfig.write_text("apiVersion: v1\nkind: Config\n")
    result = render_stack("dev", overrides={"kubeconfig": str(kubeconfig), "context": "team"})
    *runs, key_check = result.outputs["smokeTest"].splitlines()
    for line in runs:
        argv = shlex.split(line)
        assert argv[:6] == ["kubectl", "--kubeconfig", str(kubeconfig), "--context", "team", "run"]
    # Every kubectl call of the key check (list pods, exec) goes to the same cluster.
    prefix = shlex.join(["kubectl", "--kubeconfig", str(kubeconfig), "--context", "team"])
    assert key_check.count("kubectl ") == key_check.count(prefix + " ") == 2


def test_an_inline_kubeconfig_stays_out_of_the_smoke_commands() -> None:
    inline = "apiVersion: v1\nkind: Config\nusers: [{name: u, user: {token: t0ken}}]\n"
    result = render_stack("dev", overrides={"kubeconfig": inline})
    assert "t0ken" not in result.outputs["smokeTest"]
    assert "--kubeconfig" not in result.outputs["smokeTest"]


def test_resource_options_pass_through_to_every_child() -> None:
    def program() -> None:
        LlmGateway(
            "protected",
            LlmGatewayArgs(config=library_config(), openai_key=KEY),
            opts=pulumi.ResourceOptions(protect=True),
        )

    result = render({}, program=program)
    assert len(result.resources) > 10
    assert all(r.protect for r in result.resources), [
        r.name for r in result.resources if not r.protect
    ]


def test_the_key_input_is_made_secret_even_when_passed_as_plain_text() -> None:
    def program() -> None:
        LlmGateway("plain-key", LlmGatewayArgs(config=library_config(), openai_key=KEY))

    result = render({}, program=program)
    assert result.one("Secret").secret_paths == ("data",)


def test_existing_namespace_is_used_not_created() -> None:
    result = render_stack("dev", overrides={"createNamespace": False, "namespace": "team-ai"})
    assert result.of_kind("Namespace") == []
    assert {r.inputs["metadata"]["namespace"] for r in result.k8s_objects()} == {"team-ai"}


def test_image_digest_pins_the_proxy_image_everywhere() -> None:
    digest = "sha256:" + "a" * 64
    result = render_stack("prod", overrides={"proxy.imageDigest": digest})
    (container,) = result.one("Deployment").inputs["spec"]["template"]["spec"]["containers"]
    assert container["image"] == f"registry.example.com/llm-proxy@{digest}"
    assert (
        result.outputs["smokeTest"].count(f"--image registry.example.com/llm-proxy@{digest}") == 2
    )


def test_only_the_proxy_plane_declares_no_agentgateway_objects() -> None:
    result = render_stack("dev", overrides={"agentgateway.enabled": False})
    kinds = {r.kind for r in result.k8s_objects()}
    assert kinds.isdisjoint({"Gateway", "HTTPRoute", "AgentgatewayBackend"})
    assert result.outputs["gatewayEndpoint"] is None
    run, key_check = result.outputs["smokeTest"].splitlines()  # no gateway line
    assert "llm-smoke-proxy" in run
    assert key_check.startswith("(expected=")


def test_only_the_gateway_plane_declares_no_proxy_objects() -> None:
    result = render_stack("dev", overrides={"proxy.enabled": False})
    kinds = {r.kind for r in result.k8s_objects()}
    assert kinds.isdisjoint({"Deployment", "Service", "ServiceAccount", "PodDisruptionBudget"})
    assert [p.object_name for p in result.of_kind("NetworkPolicy")] == ["llm-gateway"]
    assert result.outputs["proxyEndpoint"] is None
    assert result.outputs["smokeTest"].splitlines()[0].startswith("kubectl run llm-smoke-gateway")


def test_gateway_endpoint_carries_a_non_default_port_and_the_prefix() -> None:
    result = render_stack("dev", overrides={"gateway.port": 8080, "gateway.pathPrefix": "/llm"})
    assert result.outputs["gatewayEndpoint"] == (
        "http://llm-gateway.llm-gateway-dev.svc.cluster.local:8080/llm/v1"
    )
    assert result.one("Gateway").inputs["spec"]["listeners"][0]["port"] == 8080


@pytest.mark.parametrize(
    ("base_url", "provider", "tls"),
    [
        ("https://api.openai.com/v1", {}, None),
        (
            "https://api.groq.com/openai/v1",
            {"host": "api.groq.com", "port": 443, "pathPrefix": "/openai/v1"},
            {"sni": "api.groq.com"},
        ),
        (
            "https://llm.example.com:8443/v1",
            {"host": "llm.example.com", "port": 8443},
            {"sni": "llm.example.com"},
        ),
        (
            "http://vllm.models.svc.cluster.local:8000/v1",
            {"host": "vllm.models.svc.cluster.local", "port": 8000},
            None,
        ),
    ],
)
def test_openai_base_url_sets_backend_host_port_path_and_tls(
    base_url: str, provider: dict[str, object], tls: dict[str, str] | None
) -> None:
    result = render_stack("dev", overrides={"openaiBaseUrl": base_url, **without("model")})
    spec = result.one("AgentgatewayBackend").inputs["spec"]
    assert spec["ai"]["provider"] == {"openai": {}, **provider}
    assert spec["policies"].get("tls") == tls
    (container,) = result.one("Deployment").inputs["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["LLM_PROXY_UPSTREAM"] == base_url


def test_a_config_built_in_code_is_checked_across_keys_too() -> None:
    # Valid by construction: the cross-key rules are model validators, not a later pass.
    with pytest.raises(ValidationError, match="enable at least one"):
        LlmGatewayConfig.model_validate(
            {"agentgateway": {"enabled": False}, "proxy": {"enabled": False}}
        )
    with pytest.raises(ValidationError, match="make image"):
        LlmGatewayConfig()
