"""Caller identity in the Pulumi program: config rules, the proxy Deployment's env and
volumes, the smoke pods' own ServiceAccount token, and the agentgateway policy."""

import json
from typing import Any

import pytest

from components import ConfigError
from tests.support.identity_config import APPS, ISSUER, JWKS, identity_on
from tests.support.pulumi_render import Rendered, render_stack, without


def failing(overrides: dict[str, Any]) -> str:
    result = render_stack("dev", overrides=overrides, expect_error=True)
    assert result.resources == [], "a resource was declared before validation finished"
    assert isinstance(result.error, ConfigError), result.error
    return str(result.error)


def one(result: Rendered, kind: str, name: str) -> dict[str, Any]:
    (found,) = [r.inputs for r in result.of_kind(kind) if r.object_name == name]
    return found


def proxy_env(result: Rendered) -> dict[str, str]:
    container = one(result, "Deployment", "llm-proxy")["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e["value"] for e in container["env"]}


@pytest.mark.parametrize(
    ("overrides", "words"),
    [
        ({"clients": APPS}, "llm-gateway:clients: lists apps, but identity.mode is off"),
        (
            {"identity.mode": "require", "agentgateway.enabled": False},
            "identity.mode: is require, but no `clients` are listed",
        ),
        (
            {"identity.mode": "attribute", "clients": APPS, **without("identity.jwks")},
            "identity.issuer: is needed for agentgateway's jwtAuthentication",
        ),
        (identity_on(**{"identity.jwks": "{}"}), "identity.jwks: must be a JWKS document"),
        (
            identity_on(clients=[{**APPS[1], "name": "anonymous"}]),
            "clients[0].name: 'anonymous' is reserved",
        ),
        (
            identity_on(clients=[APPS[1], {**APPS[1], "name": "other-name"}]),
            "research/jupyter is listed twice",
        ),
        (identity_on(clients=[{**APPS[0], "tokensPerMinute": 0}]), "greater than or equal to 1"),
        (
            identity_on(**{"identity.mode": "on"}),
            "identity.mode: must be one of off, attribute, require",
        ),
        (
            identity_on(clients=[{**APPS[0], "allowedModels": ["gpt-4o-mini", "gpt-4o"]}]),
            "clients[0].allowedModels: 'chat' lists ['gpt-4o'], which proxy.allowedModels "
            "['gpt-4o-mini'] refuses for every caller",
        ),
        (
            {
                **identity_on(clients=[{**APPS[0], "allowedModels": ["gpt-4o-mini"]}]),
                "proxy.enabled": False,
            },
            "clients[0].allowedModels: is enforced by the proxy plane only",
        ),
        (identity_on(clients=[{**APPS[0], "allowedModels": []}]), "at least 1 item"),
        (identity_on(clients=[{**APPS[0], "allowedModels": [" "]}]), "non-empty model names"),
        (
            identity_on("require", **{"identity.apiServerPorts": [6443]}),
            "identity.apiServerPorts: has moved to proxy.apiServerPorts",
        ),
        (
            identity_on("require", **{"proxy.apiServerPorts": []}),
            "proxy.apiServerPorts: is empty, but with identity on",
        ),
    ],
)
def test_bad_identity_config_fails_before_anything_is_declared(
    overrides: dict[str, Any], words: str
) -> None:
    assert words in failing(overrides)


def test_require_gives_the_proxy_its_clients_its_own_api_token_and_egress() -> None:
    result = render_stack("dev", overrides=identity_on("require", **{"proxy.replicas": 3}))
    env = proxy_env(result)
    assert env["LLM_PROXY_IDENTITY_MODE"] == "require"
    assert env["LLM_PROXY_IDENTITY_AUDIENCE"] == "llm-gateway"
    assert env["LLM_PROXY_IDENTITY_ISSUER"] == ISSUER
    assert env["LLM_PROXY_IDENTITY_SHARES"] == "3"  # each pod enforces a third
    clients = {c["name"]: c for c in json.loads(env["LLM_PROXY_CLIENTS"])}
    assert clients["chat"]["tokensPerMinute"] == 200000
    assert clients["llm-smoke"] == {
        "name": "llm-smoke",
        "namespace": "llm-gateway-dev",
        "serviceAccount": "llm-smoke",
    }
    pod = one(result, "Deployment", "llm-proxy")["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False  # the token comes projected instead
    # One projected credentials volume: the JWKS fetch and the Secret watch share it.
    (volume,) = [v for v in pod["volumes"] if "projected" in v]
    assert volume["name"] == "kube-api-access"
    sources = volume["projected"]["sources"]
    assert sources[0]["serviceAccountToken"] == {"path": "token", "expirationSeconds": 3607}
    assert sources[1]["configMap"]["name"] == "kube-root-ca.crt"
    mounts = pod["containers"][0]["volumeMounts"]
    assert {
        "name": "kube-api-access",
        "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount",
        "readOnly": True,
    } in mounts
    # The proxy's defaults read its token and CA there.
    assert "LLM_PROXY_IDENTITY_TOKEN_FILE" not in env
    assert "LLM_PROXY_IDENTITY_CA_FILE" not in env
    egress = one(result, "NetworkPolicy", "llm-proxy")["spec"]["egress"]
    ports = {p["port"] for rule in egress for p in rule.get("ports", [])}
    assert {443, 6443} <= ports
    smoke_account = one(result, "ServiceAccount", "llm-smoke")
    assert smoke_account["automountServiceAccountToken"] is False


def test_identity_off_adds_nothing() -> None:
    result = render_stack("dev")
    assert not any(name.startswith("LLM_PROXY_IDENTITY") for name in proxy_env(result))
    assert "LLM_PROXY_CLIENTS" not in proxy_env(result)
    assert result.of_kind("AgentgatewayPolicy") == []
    assert [r for r in result.of_kind("ServiceAccount") if r.object_name == "llm-smoke"] == []
    assert "--token-file" not in result.outputs["smokeTest"]


def test_smoke_pods_and_jobs_call_with_their_own_token() -> None:
    result = render_stack("dev", overrides=identity_on("require", **{"smokeTest.onUp": True}))
    for job in result.of_kind("Job"):
        pod = job.inputs["spec"]["template"]["spec"]
        assert pod["serviceAccountName"] == "llm-smoke"
        (volume,) = pod["volumes"]
        token = volume["projected"]["sources"][0]["serviceAccountToken"]
        assert token["audience"] == "llm-gateway"
        container = pod["containers"][0]
        assert container["volumeMounts"][0]["mountPath"] == "/var/run/secrets/llm-gateway/token"
        command = container["command"]
        assert (
            command[command.index("--token-file") + 1] == "/var/run/secrets/llm-gateway/token/token"
        )
    smoke = result.outputs["smokeTest"]
    assert smoke.count("--token-file /var/run/secrets/llm-gateway/token/token") == 2
    assert '"serviceAccountName":"llm-smoke"' in smoke
    assert '"audience":"llm-gateway"' in smoke


def test_agentgateway_policy_verifies_authorizes_and_limits_per_app() -> None:
    result = render_stack("dev", overrides=identity_on("require"))
    (policy,) = result.of_kind("AgentgatewayPolicy")
    spec = policy.inputs["spec"]
    assert spec["targetRefs"] == [
        {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "llm-gateway"}
    ]
    traffic = spec["traffic"]
    jwt = traffic["jwtAuthentication"]
    assert jwt["mode"] == "Strict"
    assert jwt["providers"] == [
        {"issuer": ISSUER, "audiences": ["llm-gateway"], "jwks": {"inline": JWKS}}
    ]
    (rule,) = traffic["authorization"]["policy"]["matchExpressions"]
    assert rule == (
        'jwt.sub in ["system:serviceaccount:team-ai:chat", '
        '"system:serviceaccount:research:jupyter", '
        '"system:serviceaccount:llm-gateway-dev:llm-smoke"]'
    )
    assert traffic["rateLimit"]["conditional"] == [
        {
            "condition": 'jwt.sub == "system:serviceaccount:team-ai:chat"',
            "policy": {
                "local": [
                    {"requests": 600, "unit": "Minutes"},
                    {"tokens": 200000, "unit": "Minutes"},
                ]
            },
        }
    ]


def test_attribute_mode_lets_tokenless_calls_through_the_gateway() -> None:
    result = render_stack("dev", overrides=identity_on("attribute"))
    (policy,) = result.of_kind("AgentgatewayPolicy")
    traffic = policy.inputs["spec"]["traffic"]
    assert traffic["jwtAuthentication"]["mode"] == "Optional"
    assert "authorization" not in traffic
    assert proxy_env(result)["LLM_PROXY_IDENTITY_MODE"] == "attribute"


def test_an_apps_model_list_reaches_the_proxy_and_no_other_app_changes() -> None:
    apps = [{**APPS[0], "allowedModels": ["gpt-4o-mini"]}, APPS[1]]
    result = render_stack("dev", overrides=identity_on("require", clients=apps))
    clients = {c["name"]: c for c in json.loads(proxy_env(result)["LLM_PROXY_CLIENTS"])}
    assert clients["chat"]["allowedModels"] == ["gpt-4o-mini"]
    # An app without a list carries no key: existing stacks' pods keep their env.
    assert "allowedModels" not in clients["notebooks"]
    assert "allowedModels" not in clients["llm-smoke"]
    # agentgateway's authorization cannot see the model: its policy names none.
    (policy,) = result.of_kind("AgentgatewayPolicy")
    assert "gpt-4o-mini" not in json.dumps(policy.inputs)


def test_a_model_list_within_the_proxys_allowlist_is_accepted() -> None:
    apps = [{**APPS[0], "allowedModels": ["gpt-4o"]}]
    overrides = identity_on("require", clients=apps, **{"proxy.allowedModels": []})
    clients = json.loads(proxy_env(render_stack("dev", overrides=overrides))["LLM_PROXY_CLIENTS"])
    assert clients[0]["allowedModels"] == ["gpt-4o"]  # no proxy allowlist: any model may be listed
