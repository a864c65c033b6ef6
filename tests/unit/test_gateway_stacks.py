"""Each stack file, rendered under Pulumi's mocks: every resource and property that matters."""

import base64
import json
import shlex
from functools import cache

import pytest

from proxy import settings as proxy_settings
from proxy.egress import egress_proxy_for
from proxy.fingerprint import key_fingerprint
from tests.support.pulumi_render import (
    STACKS,
    TEST_IMAGE,
    Rendered,
    fake_key,
    render_stack,
    stack_file_config,
)

SKIP_AWAIT = "pulumi.com/skipAwait"
WAIT_FOR = "pulumi.com/waitFor"


@cache
def rendered(stack: str) -> Rendered:
    return render_stack(stack)


def expected_replicas(stack: str) -> int:
    return int(stack_file_config(stack)["proxy"]["replicas"])


@pytest.fixture(params=STACKS)
def stack(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_every_stack_declares_the_full_resource_set(stack: str) -> None:
    kinds = sorted((r.kind, r.object_name) for r in rendered(stack).k8s_objects())
    expected = [
        ("AgentgatewayBackend", "openai"),
        ("Deployment", "llm-proxy"),
        ("Gateway", "llm-gateway"),
        ("HTTPRoute", "llm-gateway"),
        ("Namespace", stack_file_config(stack)["namespace"]),
        ("NetworkPolicy", "llm-gateway"),
        ("NetworkPolicy", "llm-proxy"),
        ("Role", "llm-proxy-key-reader"),
        ("RoleBinding", "llm-proxy-key-reader"),
        ("Secret", "openai-api-key"),
        ("Service", "llm-proxy"),
        ("ServiceAccount", "llm-proxy"),
    ]
    if expected_replicas(stack) > 1:
        expected.append(("PodDisruptionBudget", "llm-proxy"))
    assert kinds == sorted(expected)


def test_components_use_the_package_type_tokens_and_parent_every_child(stack: str) -> None:
    result = rendered(stack)
    components = {r.typ for r in result.resources if not r.custom}
    assert components == {
        "llm-gateway:index:LlmGateway",
        "llm-gateway:index:KeySecret",
        "llm-gateway:index:AgentgatewayPlane",
        "llm-gateway:index:LlmProxy",
    }
    expected_parent = {
        "Secret": "llm-gateway:index:KeySecret",
        "AgentgatewayBackend": "llm-gateway:index:AgentgatewayPlane",
        "HTTPRoute": "llm-gateway:index:AgentgatewayPlane",
        "Deployment": "llm-gateway:index:LlmProxy",
        "Service": "llm-gateway:index:LlmProxy",
        "ServiceAccount": "llm-gateway:index:LlmProxy",
        "Role": "llm-gateway:index:LlmProxy",
        "RoleBinding": "llm-gateway:index:LlmProxy",
        "PodDisruptionBudget": "llm-gateway:index:LlmProxy",
        "Gateway": "llm-gateway:index:AgentgatewayPlane",
        "Namespace": "llm-gateway:index:LlmGateway",
    }
    expected_parent_of_policy = {
        "llm-proxy": "llm-gateway:index:LlmProxy",
        "llm-gateway": "llm-gateway:index:AgentgatewayPlane",
    }
    for obj in result.k8s_objects():
        ancestors = result.ancestors(obj)
        if obj.kind == "NetworkPolicy":
            assert ancestors[0] == expected_parent_of_policy[str(obj.object_name)]
        else:
            assert ancestors[0] == expected_parent[str(obj.kind)], obj.name
        assert ancestors[-1] == "llm-gateway:index:LlmGateway", obj.name
    (top,) = result.of_type("llm-gateway:index:LlmGateway")
    assert "::pulumi:pulumi:Stack::" in top.parent_urn


def test_every_kubernetes_object_uses_the_secret_mutable_provider(stack: str) -> None:
    result = rendered(stack)
    (provider,) = result.of_type("pulumi:providers:kubernetes")
    assert provider.inputs.get("enableSecretMutable") == "true"
    assert result.ancestors(provider)[0] == "llm-gateway:index:LlmGateway"
    for obj in result.k8s_objects():
        assert obj.provider.startswith(provider.urn + "::"), obj.name


def test_everything_lives_in_the_stack_namespace(stack: str) -> None:
    namespace = stack_file_config(stack)["namespace"]
    for obj in rendered(stack).k8s_objects():
        if obj.kind != "Namespace":
            assert obj.inputs["metadata"]["namespace"] == namespace, obj.name


def test_real_stacks_keep_awaiting_readiness(stack: str) -> None:
    for obj in rendered(stack).k8s_objects():
        assert SKIP_AWAIT not in obj.inputs["metadata"].get("annotations", {}), obj.name


def test_pulumi_up_waits_until_the_gateway_is_programmed_and_the_backend_accepted(
    stack: str,
) -> None:
    gateway = rendered(stack).one("Gateway")
    assert gateway.inputs["metadata"]["annotations"] == {WAIT_FOR: "condition=Programmed"}
    backend = rendered(stack).one("AgentgatewayBackend")
    assert backend.inputs["metadata"]["annotations"] == {WAIT_FOR: "condition=Accepted"}
    awaited = ("Gateway", "AgentgatewayBackend")
    others = [o for o in rendered(stack).k8s_objects() if o.kind not in awaited]
    assert all(WAIT_FOR not in o.inputs["metadata"].get("annotations", {}) for o in others)


def test_skip_await_annotates_every_object() -> None:
    result = render_stack("dev", overrides={"skipAwait": True})
    objects = result.k8s_objects()
    assert objects
    for obj in objects:
        # Only skipAwait: no waitFor either, since nothing would ever set the condition.
        assert obj.inputs["metadata"]["annotations"] == {SKIP_AWAIT: "true"}, obj.name


def test_secret_holds_the_key_as_base64_under_apikey_and_only_as_a_secret(stack: str) -> None:
    secret = rendered(stack).one("Secret")
    assert secret.inputs["type"] == "Opaque"
    assert "stringData" not in secret.inputs
    assert secret.inputs["data"] == {"apiKey": base64.b64encode(fake_key(stack).encode()).decode()}
    assert secret.secret_paths == ("data",)


def test_the_key_appears_in_no_resource_but_the_secret(stack: str) -> None:
    key = fake_key(stack)
    forms = {key, base64.b64encode(key.encode()).decode()}
    result = rendered(stack)
    for res in result.resources:
        text = json.dumps(res.inputs)
        leaked = [form for form in forms if form in text]
        if res.kind == "Secret":
            continue
        assert not leaked, f"{res.typ} {res.name} contains the key"
    outputs = json.dumps(result.outputs)
    assert not [form for form in forms if form in outputs]


def test_outputs_name_endpoints_and_the_key_fingerprint_without_secrets(stack: str) -> None:
    result = rendered(stack)
    namespace = stack_file_config(stack)["namespace"]
    prefix = stack_file_config(stack)["gateway"]["pathPrefix"].rstrip("/")
    assert result.outputs["namespace"] == namespace
    assert result.outputs["secretName"] == "openai-api-key"
    assert result.outputs["keyFingerprint"] == key_fingerprint(fake_key(stack))
    assert result.outputs["gatewayEndpoint"] == (
        f"http://llm-gateway.{namespace}.svc.cluster.local{prefix}/v1"
    )
    assert result.outputs["proxyEndpoint"] == f"http://llm-proxy.{namespace}.svc.cluster.local/v1"
    assert result.outputs["killSwitch"] is False
    # Nothing exported is secret: the key is not exported at all, the fingerprint is public.
    assert result.secret_outputs == set()


def test_smoke_test_runs_the_proxy_image_against_each_plane_without_credentials(
    stack: str,
) -> None:
    result = rendered(stack)
    image = TEST_IMAGE
    lines = result.outputs["smokeTest"].splitlines()
    assert len(lines) == 3  # gateway, proxy, then the proxy pods' key check
    for line, url_output in zip(lines, ("gatewayEndpoint", "proxyEndpoint"), strict=False):
        assert line.startswith("kubectl run llm-smoke-")
        assert f"--namespace {result.outputs['namespace']}" in line
        assert "--rm -i --restart=Never" in line
        assert f"--image {image}" in line
        smoke = f"-- python -m proxy smoke --url {result.outputs[url_output]} --model gpt-4o-mini"
        assert line.split("  # ")[0].endswith(smoke)
        assert "Authorization" not in line
        assert "sk-" not in line
        argv = shlex.split(line, comments=True)
        assert "--override-type=strategic" in argv
        overrides = json.loads(
            next(a for a in argv if a.startswith("--overrides=")).split("=", 1)[1]
        )
        pod = overrides["spec"]
        assert pod["automountServiceAccountToken"] is False
        assert pod["securityContext"]["runAsNonRoot"] is True
        (container,) = pod["containers"]
        assert container["name"] == argv[2]  # kubectl names the container after the pod
        assert container["securityContext"]["allowPrivilegeEscalation"] is False
        assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}


def test_smoke_test_says_agentgateway_cannot_report_its_key(stack: str) -> None:
    gateway_line = rendered(stack).outputs["smokeTest"].splitlines()[0]
    assert "llm-smoke-gateway" in gateway_line
    assert gateway_line.endswith("# agentgateway cannot report which key it holds: not checked")


def test_smoke_test_checks_every_proxy_pod_serves_the_stack_fingerprint(stack: str) -> None:
    result = rendered(stack)
    key_check = result.outputs["smokeTest"].splitlines()[-1]
    fingerprint = result.outputs["keyFingerprint"]
    assert key_check.startswith(f"(expected={fingerprint}; ")
    assert f"get pods -n {result.outputs['namespace']} -l app.kubernetes.io/name=llm-proxy" in (
        key_check
    )
    assert "exec -n" in key_check
    assert "/readyz" in key_check
    assert "seq 36" in key_check  # 36 tries 5 s apart: a bounded wait past the kubelet's sync
    assert key_check.endswith("exit 1)")


def test_with_the_kill_switch_on_the_smoke_test_says_so_and_fails() -> None:
    (line,) = render_stack("dev", overrides={"killSwitch": True}).outputs["smokeTest"].splitlines()
    assert "killSwitch is on" in line
    assert line.endswith("exit 1")


def test_backend_references_the_secret_by_name_and_key_and_maps_openai_paths(stack: str) -> None:
    spec = rendered(stack).one("AgentgatewayBackend").inputs["spec"]
    assert spec["policies"]["auth"] == {"secretRef": {"name": "openai-api-key", "key": "apiKey"}}
    assert spec["policies"]["ai"]["routes"] == {
        "/v1/chat/completions": "Completions",
        "/v1/embeddings": "Embeddings",
        "/v1/models": "Models",
        "/v1/responses": "Responses",
        "*": "Passthrough",
    }
    model = stack_file_config(stack).get("model")
    assert spec["ai"] == {"provider": {"openai": {"model": model} if model else {}}}


def test_gateway_has_one_http_listener_of_the_configured_class(stack: str) -> None:
    spec = rendered(stack).one("Gateway").inputs["spec"]
    assert spec["gatewayClassName"] == "agentgateway"
    assert spec["listeners"] == [
        {
            "name": "http",
            "protocol": "HTTP",
            "port": 80,
            "allowedRoutes": {"namespaces": {"from": "Same"}},
        }
    ]


def test_route_is_an_httproute_to_the_backend_with_group_and_kind(stack: str) -> None:
    route = rendered(stack).one("HTTPRoute").inputs
    assert route["apiVersion"] == "gateway.networking.k8s.io/v1"
    (rule,) = route["spec"]["rules"]
    assert rule["backendRefs"] == [
        {"group": "agentgateway.dev", "kind": "AgentgatewayBackend", "name": "openai"}
    ]
    assert route["spec"]["parentRefs"] == [
        {
            "group": "gateway.networking.k8s.io",
            "kind": "Gateway",
            "name": "llm-gateway",
            "sectionName": "http",
        }
    ]
    prefix = stack_file_config(stack)["gateway"]["pathPrefix"]
    assert rule["matches"] == [{"path": {"type": "PathPrefix", "value": prefix}}]
    if prefix == "/":
        assert "filters" not in rule
    else:
        assert rule["filters"] == [
            {
                "type": "URLRewrite",
                "urlRewrite": {"path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": "/"}},
            }
        ]


def test_proxy_pod_is_hardened_and_probed(stack: str) -> None:
    spec = rendered(stack).one("Deployment").inputs["spec"]
    pod = spec["template"]["spec"]
    (container,) = pod["containers"]
    assert pod["automountServiceAccountToken"] is False
    assert pod["serviceAccountName"] == "llm-proxy"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    sc = container["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["runAsUser"] == 10001
    assert container["command"] == ["python", "-m", "proxy", "serve"]
    assert container["ports"] == [
        {"name": "http", "containerPort": 8080, "protocol": "TCP"},
        {"name": "metrics", "containerPort": 9090, "protocol": "TCP"},
    ]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    # Keeps serving while endpoints catch up, then drains within the grace period.
    pre_stop = container["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep"
    drain = float(
        next(e["value"] for e in container["env"] if e["name"] == "LLM_PROXY_DRAIN_TIMEOUT")
    )
    assert pod["terminationGracePeriodSeconds"] > int(pre_stop[1]) + drain
    resources = stack_file_config(stack)["proxy"]["resources"]
    assert container["resources"] == resources
    assert spec["replicas"] == expected_replicas(stack)


def test_key_is_a_whole_secret_volume_never_subpath_env_or_annotation(stack: str) -> None:
    pod = rendered(stack).one("Deployment").inputs["spec"]["template"]
    (container,) = pod["spec"]["containers"]
    key_mounts = [m for m in container["volumeMounts"] if m["name"] == "api-key"]
    assert key_mounts == [
        {"name": "api-key", "mountPath": "/etc/llm-gateway/secret", "readOnly": True}
    ]
    volume = next(v for v in pod["spec"]["volumes"] if v["name"] == "api-key")
    assert volume["secret"]["secretName"] == "openai-api-key"
    assert "items" not in volume["secret"]
    assert all("valueFrom" not in e for e in container["env"])
    assert "annotations" not in pod.get("metadata", {})


def test_proxy_env_follows_the_contract(stack: str) -> None:
    cfg = stack_file_config(stack)
    (container,) = (
        rendered(stack).one("Deployment").inputs["spec"]["template"]["spec"]["containers"]
    )
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["LLM_PROXY_HOST"] == "0.0.0.0"
    assert env["LLM_PROXY_PORT"] == "8080"
    assert env["LLM_PROXY_METRICS_PORT"] == "9090"  # /metrics only there, not beside /v1
    assert env["LLM_PROXY_UPSTREAM"] == "https://api.openai.com/v1"
    assert env["LLM_PROXY_KEY_FILE"] == "/etc/llm-gateway/secret/apiKey"
    assert env["LLM_PROXY_ALLOWED_MODELS"] == ",".join(cfg["proxy"]["allowedModels"])
    assert env["LLM_PROXY_MAX_IN_FLIGHT"] == str(cfg["proxy"]["maxInFlight"])
    assert set(env) >= {
        "LLM_PROXY_MAX_BODY_BYTES",
        "LLM_PROXY_CONNECT_TIMEOUT",
        "LLM_PROXY_READ_TIMEOUT",
    }
    assert "LLM_PROXY_DISABLED" not in env


def test_every_proxy_env_var_is_one_the_proxy_reads(stack: str, monkeypatch) -> None:
    # The proxy ignores unknown LLM_PROXY_* variables, so a misspelt name would be lost
    # silently: each must name a setting, and together they must load as intended.
    cfg = stack_file_config(stack)
    (container,) = (
        rendered(stack).one("Deployment").inputs["spec"]["template"]["spec"]["containers"]
    )
    env = {e["name"]: e["value"] for e in container["env"]}
    fields = set(proxy_settings.Settings.model_fields)
    for name in env:
        assert name.startswith("LLM_PROXY_"), name  # standard *_PROXY only when configured
        assert name.removeprefix("LLM_PROXY_").lower() in fields, name
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    loaded = proxy_settings.Settings()
    assert list(loaded.allowed_models) == cfg["proxy"]["allowedModels"]
    assert loaded.max_in_flight == cfg["proxy"]["maxInFlight"]
    assert str(loaded.key_file) == "/etc/llm-gateway/secret/apiKey"
    assert loaded.port == 8080
    assert loaded.allow_unpoliced_paths is False  # the allowlist fails closed by default
    assert loaded.require_key is True  # no usable key at start: exit saying why, not hang


@pytest.mark.parametrize(
    ("cpu_limit", "workers"),
    [
        ("250m", "1"),
        ("1", "1"),
        ("1500m", "1"),
        ("2", "2"),
        ("3.5", "3"),
        ("64", "16"),
        (None, "1"),
    ],
)
def test_the_proxy_runs_one_worker_per_whole_cpu_of_its_limit(
    cpu_limit: str | None, workers: str
) -> None:
    result = render_stack("prod", overrides={"proxy.resources.limits.cpu": cpu_limit})
    (container,) = result.one("Deployment").inputs["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["LLM_PROXY_WORKERS"] == workers


def test_unpoliced_paths_are_allowed_only_when_the_config_says_so(monkeypatch) -> None:
    result = render_stack("prod", overrides={"proxy.allowUnpolicedPaths": True})
    (container,) = result.one("Deployment").inputs["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e["value"] for e in container["env"]}
    monkeypatch.setenv("LLM_PROXY_ALLOW_UNPOLICED_PATHS", env["LLM_PROXY_ALLOW_UNPOLICED_PATHS"])
    assert proxy_settings.Settings().allow_unpoliced_paths is True


def test_egress_proxy_reaches_the_proxy_as_the_standard_variables(monkeypatch) -> None:
    egress = "http://egress.internal:3128"
    result = render_stack("prod", overrides={"proxy.egressProxy": egress})
    (container,) = result.one("Deployment").inputs["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e["value"] for e in container["env"]}
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    for name in ("HTTPS_PROXY", "HTTP_PROXY", "NO_PROXY"):
        monkeypatch.setenv(name, env[name])
    # What the proxy process would conclude from that environment.
    assert egress_proxy_for("https://api.openai.com/v1") == egress
    assert egress_proxy_for("http://vllm.llm.svc.cluster.local/v1") is None
    assert egress_proxy_for("http://vllm.llm.svc/v1") is None


def test_service_account_mounts_no_token_and_service_fronts_port_8080(stack: str) -> None:
    result = rendered(stack)
    assert result.one("ServiceAccount").inputs["automountServiceAccountToken"] is False
    svc = result.one("Service").inputs["spec"]
    assert svc["ports"] == [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]
    assert svc["selector"] == {"app.kubernetes.io/name": "llm-proxy"}
    deployment = result.one("Deployment").inputs["spec"]
    assert deployment["selector"]["matchLabels"] == svc["selector"]


def test_pdb_only_when_more_than_one_replica() -> None:
    assert not render_stack("dev", overrides={"proxy.replicas": 1}).of_kind("PodDisruptionBudget")
    pdb = render_stack("dev", overrides={"proxy.replicas": 2}).one("PodDisruptionBudget")
    assert pdb.inputs["spec"] == {
        "maxUnavailable": 1,
        "selector": {"matchLabels": {"app.kubernetes.io/name": "llm-proxy"}},
    }


def test_stack_files_hold_no_plaintext_key(stack: str) -> None:
    key = stack_file_config(stack).get("openaiKey")
    assert key is None or (isinstance(key, dict) and set(key) == {"secure"})


def test_stacks_differ_sensibly_per_environment() -> None:
    replicas = [expected_replicas(stack) for stack in STACKS]
    assert replicas == sorted(replicas)
    assert replicas[0] < replicas[-1]
    namespaces = {stack_file_config(stack)["namespace"] for stack in STACKS}
    assert len(namespaces) == len(STACKS), "stacks sharing a cluster must not share a namespace"
