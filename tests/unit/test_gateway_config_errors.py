"""Bad config fails the run before anything is declared, one clear message per problem."""

from typing import Any

import pytest

from components import ConfigError
from components.config import MISSING_KEY
from tests.support.pulumi_render import TEST_IMAGE, fake_key, render, render_stack, without

SET = "pulumi config set"


def failing(overrides: dict[str, Any], *, key: str | None = None) -> ConfigError:
    result = render_stack("dev", key=key, overrides=overrides, expect_error=True)
    assert result.resources == [], "a resource was declared before validation finished"
    assert isinstance(result.error, ConfigError), result.error
    return result.error


# (overrides, config key named, words of the problem, example command)
CASES = [
    (
        {"proxy.replicas": -1},
        "proxy.replicas",
        "greater than or equal to 0",
        f"{SET} --path proxy.replicas 2",
    ),
    (
        {"proxy.replicas": "two"},
        "proxy.replicas",
        "valid integer",
        f"{SET} --path proxy.replicas 2",
    ),
    (
        {"gateway.port": 0},
        "gateway.port",
        "greater than or equal to 1",
        f"{SET} --path gateway.port 80",
    ),
    (
        {"gateway.port": 70000},
        "gateway.port",
        "less than or equal to 65535",
        f"{SET} --path gateway.port 80",
    ),
    (
        {"gateway.pathPrefix": "openai"},
        "gateway.pathPrefix",
        "must start with '/'",
        f"{SET} --path gateway.pathPrefix /openai",
    ),
    (
        {"gateway.pathPrefix": "/openai/"},
        "gateway.pathPrefix",
        "must not end with '/'",
        f"{SET} --path gateway.pathPrefix /openai",
    ),
    (
        {"gateway.name": "LLM_Gateway"},
        "gateway.name",
        "DNS-1123 label",
        f"{SET} --path gateway.name llm-gateway",
    ),
    (
        {"proxy.image": "Not An Image"},
        "proxy.image",
        "not a well-formed image reference",
        f"{SET} --path proxy.image",
    ),
    (
        {"proxy.image": "ghcr.io/acme/llm-proxy:"},
        "proxy.image",
        "not a well-formed image reference",
        f"{SET} --path proxy.image",
    ),
    (
        {"proxy.imageDigest": "sha256:abc"},
        "proxy.imageDigest",
        "64 lowercase hex",
        f"{SET} --path proxy.imageDigest sha256:",
    ),
    (
        {"proxy.imagePullPolicy": "Sometimes"},
        "proxy.imagePullPolicy",
        "Always, IfNotPresent, Never",
        f"{SET} --path proxy.imagePullPolicy",
    ),
    (
        {"proxy.maxInFlight": 0},
        "proxy.maxInFlight",
        "greater than or equal to 1",
        f"{SET} --path proxy.maxInFlight",
    ),
    (
        {"proxy.resources.limits.memory": "lots"},
        "proxy.resources.limits.memory",
        "Kubernetes quantity",
        f"{SET} --path proxy.resources.limits.memory 256Mi",
    ),
    (
        {"proxy.resources.requests": "small"},
        "proxy.resources.requests",
        "valid dictionary",
        f"{SET} --path proxy.resources.requests.memory 64Mi",
    ),
    (
        {"proxy.allowedModels": ["gpt-4o-mini", " "]},
        "proxy.allowedModels",
        "non-empty model names",
        f"{SET} --path 'proxy.allowedModels[0]' gpt-4o-mini",
    ),
    (
        {"proxy.allowedModels": ["gpt-4o-mini", 7]},
        "proxy.allowedModels[1]",
        "valid string",
        f"{SET} --path 'proxy.allowedModels[0]' gpt-4o-mini",
    ),
    ({"namespace": "LLM"}, "namespace", "DNS-1123 label", f"{SET} namespace llm-gateway"),
    (
        {"secretName": "Key_Secret"},
        "secretName",
        "DNS-1123 subdomain",
        f"{SET} secretName openai-api-key",
    ),
    (
        {"openaiBaseUrl": "ftp://example.com/v1"},
        "openaiBaseUrl",
        "absolute http(s) URL",
        f"{SET} openaiBaseUrl https://api.openai.com/v1",
    ),
    (
        {"openaiBaseUrl": "https://api.example.com"},
        "openaiBaseUrl",
        "API base path",
        f"{SET} openaiBaseUrl https://api.openai.com/v1",
    ),
    ({"killSwitch": "maybe"}, "killSwitch", "valid boolean", f"{SET} killSwitch true"),
    ({"killswitch": True}, "killswitch", "did you mean killSwitch?", f"{SET} killSwitch true"),
    (
        {"proxy.replica": 2},
        "proxy.replica",
        "did you mean proxy.replicas?",
        f"{SET} --path proxy.replicas 2",
    ),
    ({"model": "gpt-4o"}, "model", "not in proxy.allowedModels", f"{SET} model gpt-4o-mini"),
    (
        {"smokeTest.model": "gpt-4o"},
        "smokeTest.model",
        "smoke test through the proxy would get 403",
        f"{SET} --path smokeTest.model gpt-4o-mini",
    ),
    (
        {"proxy.resources.limits.memory": "24Mi"},  # below the dev stack's request, 48Mi
        "proxy.resources.requests.memory",
        "48Mi is more than limits.memory 24Mi",
        f"{SET} --path proxy.resources.requests.memory 24Mi",
    ),
    (
        {"proxy.resources.requests.cpu": "2", "proxy.resources.limits.cpu": "1500m"},
        "proxy.resources.requests.cpu",
        "Kubernetes refuses a pod whose request exceeds its limit",
        f"{SET} --path proxy.resources.requests.cpu 1500m",
    ),
    (
        {"proxy.rolloutTimeout": 5},
        "proxy.rolloutTimeout",
        "greater than or equal to 30",
        f"{SET} --path proxy.rolloutTimeout 300",
    ),
    (
        {"proxy.egressProxy": "egress.internal:3128"},
        "proxy.egressProxy",
        "must be an http(s) URL",
        f"{SET} --path proxy.egressProxy http://egress.internal:3128",
    ),
    (
        {"proxy.noProxy": [".svc", "a.example.com,b.example.com"]},
        "proxy.noProxy",
        "host names, domains",
        f"{SET} --path 'proxy.noProxy[0]' .internal.example.com",
    ),
    (
        {
            "allowedClients": [
                {"namespaceLabels": {"team": "ai"}},
                {"namespaceLabels": {"a b": "x"}},
            ]
        },
        "allowedClients[1].namespaceLabels",
        "not a Kubernetes label key",
        f"{SET} --path 'allowedClients[0].namespaceLabels.llm-gateway/client' true",
    ),
    (
        {"metricsScraper": {"podLabels": {"app": "prometheus"}}},
        "metricsScraper.namespaceLabels",
        "Field required",
        f"{SET} --path metricsScraper.namespaceLabels.team observability",
    ),
    (
        {"proxy.extraEgressPorts": [8000, 70000]},
        "proxy.extraEgressPorts",
        "TCP ports",
        f"{SET} --path 'proxy.extraEgressPorts[0]' 8080",
    ),
    (
        {"gateway.port": 15020},
        "gateway.port",
        "reserved by the agentgateway data plane",
        f"{SET} --path gateway.port 80",
    ),
    (
        {"agentgateway.enabled": False, "proxy.enabled": False},
        "agentgateway.enabled",
        "enable at least one",
        f"{SET} --path proxy.enabled true",
    ),
]


@pytest.mark.parametrize(
    ("overrides", "key", "words", "example"), CASES, ids=[c[1] + ":" + c[2][:20] for c in CASES]
)
def test_each_bad_value_names_its_key_the_problem_and_a_good_example(
    overrides: dict[str, Any], key: str, words: str, example: str
) -> None:
    error = failing(overrides)
    matching = [p for p in error.problems if p.key == key]
    assert matching, f"no problem reported for {key}: {error}"
    (problem,) = matching
    assert words in problem.problem
    assert problem.example.startswith(example)
    assert f"llm-gateway:{key}: " in str(error)
    assert f"e.g. {problem.example}" in str(error)


def test_missing_openai_key_prints_the_exact_command() -> None:
    error = failing(without("openaiKey"))
    assert [(p.key, p.problem) for p in error.problems] == [("openaiKey", MISSING_KEY)]
    assert "llm-gateway:openaiKey: is required but not set" in str(error)  # e2e matches this
    assert "pulumi config set --secret openaiKey sk-..." in str(error)


def test_blank_key_is_refused_without_echoing_it() -> None:
    error = failing({}, key="   ")
    assert [p.key for p in error.problems] == ["openaiKey"]
    assert "is empty" in str(error)


def test_a_key_with_inner_whitespace_is_refused_without_echoing_it() -> None:
    key = fake_key("pasted twice")
    error = failing({}, key=key)
    assert "whitespace" in str(error)
    assert key not in str(error)


def test_an_egress_proxy_with_credentials_is_refused_without_echoing_them() -> None:
    secret = fake_key("in-egress")
    error = failing({"proxy.egressProxy": f"http://user:{secret}@egress.internal:3128"})
    assert [p.key for p in error.problems] == ["proxy.egressProxy"]
    assert "credentials" in str(error)
    assert secret not in str(error)


def test_a_base_url_carrying_credentials_is_refused_without_echoing_them() -> None:
    secret = fake_key("in-url")
    for url in (
        f"https://user:{secret}@llm.example.com/v1",
        f"https://llm.example.com/v1?key={secret}",
    ):
        error = failing({"openaiBaseUrl": url})
        assert [p.key for p in error.problems] == ["openaiBaseUrl"]
        assert "credentials" in str(error)
        assert secret not in str(error)


def test_a_value_stored_as_secret_is_never_echoed() -> None:
    # e.g. the key pasted into the wrong key with --secret
    pasted = fake_key("WRONG-KEY")
    config = {"openaiKey": fake_key("x"), "secretName": pasted, "proxy": {"image": TEST_IMAGE}}
    result = render(config, secret_keys=("openaiKey", "secretName"), expect_error=True)
    assert isinstance(result.error, ConfigError)
    assert [p.key for p in result.error.problems] == ["secretName"]
    assert "DNS-1123 subdomain" in str(result.error)
    assert pasted not in str(result.error)


def test_plaintext_key_in_the_stack_file_is_refused() -> None:
    result = render({"openaiKey": fake_key("plain")}, secret_keys=(), expect_error=True)
    assert isinstance(result.error, ConfigError)
    assert "stored in plaintext" in str(result.error)
    assert fake_key("plain") not in str(result.error)
    assert result.resources == []


def test_all_problems_are_collected_not_just_the_first() -> None:
    error = failing(
        {
            **without("openaiKey"),
            "proxy.replicas": -1,
            "gateway.port": 70000,
            "gateway.pathPrefix": "v1",
            "proxy.image": "BAD IMAGE",
            "namespace": "Bad_NS",
            "killswitch": True,
        }
    )
    assert sorted(p.key for p in error.problems) == sorted(
        [
            "openaiKey",
            "proxy.replicas",
            "gateway.port",
            "gateway.pathPrefix",
            "proxy.image",
            "namespace",
            "killswitch",
        ]
    )
    assert str(error).startswith("stack config has 7 problem(s):")


@pytest.mark.parametrize("key", ["context", "kubeconfig"])
def test_the_kubernetes_providers_own_config_key_is_not_silently_ignored(key: str) -> None:
    # Our explicit provider never reads kubernetes:*; without this the stack would go to
    # the ambient kubeconfig's current cluster.
    config = {
        "openaiKey": fake_key("x"),
        f"kubernetes:{key}": "prod-cluster",
        "proxy": {"image": TEST_IMAGE},
    }
    result = render(config, expect_error=True)
    assert isinstance(result.error, ConfigError)
    assert [p.key for p in result.error.problems] == [key]
    (problem,) = result.error.problems
    assert f"kubernetes:{key} is set" in problem.problem
    assert problem.example.startswith(f"{SET} {key} ")
    assert "prod-cluster" not in str(result.error)  # a kubeconfig may be inline credentials
    assert result.resources == []


def test_the_kubernetes_providers_key_is_fine_alongside_ours() -> None:
    config = {
        "openaiKey": fake_key("x"),
        "kubernetes:context": "a",
        "context": "a",
        "proxy": {"image": TEST_IMAGE},
    }
    assert render(config).outputs["smokeTest"].startswith("kubectl --context a run ")


def test_object_keys_must_be_maps() -> None:
    config = {"openaiKey": fake_key("x"), "gateway": "port 80", "proxy": {"image": TEST_IMAGE}}
    result = render(config, expect_error=True)
    assert isinstance(result.error, ConfigError)
    assert [p.key for p in result.error.problems] == ["gateway"]
    assert result.error.problems[0].problem.startswith("must be an object (a YAML map)")


def test_defaults_and_an_image_are_a_valid_config() -> None:
    result = render({"openaiKey": fake_key("defaults"), "proxy": {"image": TEST_IMAGE}})
    assert result.outputs["namespace"] == "llm-gateway"
    assert (
        result.outputs["gatewayEndpoint"] == "http://llm-gateway.llm-gateway.svc.cluster.local/v1"
    )
