"""proxy.keySource: api (the default) grants the proxy exactly its one Secret and mounts the
token for the proxy alone; file keeps today's mount-only pod with no API access."""

from typing import Any

import pytest

from components import ConfigError
from proxy import settings as proxy_settings
from tests.support.pulumi_render import STACKS, Rendered, render_stack

SECRET = "openai-api-key"
TOKEN_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"


def pod_of(result: Rendered) -> dict[str, Any]:
    pod: dict[str, Any] = result.one("Deployment").inputs["spec"]["template"]["spec"]
    return pod


def env_of(result: Rendered) -> dict[str, str]:
    (container,) = pod_of(result)["containers"]
    return {e["name"]: e["value"] for e in container["env"]}


@pytest.mark.parametrize("stack", STACKS)
def test_the_role_reads_the_key_secret_alone_and_is_bound_to_the_proxy(stack: str) -> None:
    result = render_stack(stack)
    role = result.one("Role").inputs
    assert role["rules"] == [
        {
            "apiGroups": [""],
            "resources": ["secrets"],
            "resourceNames": [SECRET],
            "verbs": ["get", "list", "watch"],
        }
    ]
    binding = result.one("RoleBinding").inputs
    namespace = result.one("Namespace").inputs["metadata"]["name"]
    assert role["metadata"]["namespace"] == binding["metadata"]["namespace"] == namespace
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": role["metadata"]["name"],
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "llm-proxy", "namespace": namespace}
    ]
    # No proxy pod starts before it may read its key.
    deployment = result.one("Deployment")
    for granted in (result.one("Role"), result.one("RoleBinding")):
        assert granted.urn in deployment.dependencies


@pytest.mark.parametrize("stack", STACKS)
def test_the_token_is_mounted_into_the_proxy_container_alone(stack: str) -> None:
    result = render_stack(stack)
    pod = pod_of(result)
    assert pod["automountServiceAccountToken"] is False  # nothing implicit
    assert result.one("ServiceAccount").inputs["automountServiceAccountToken"] is False
    (volume,) = [v for v in pod["volumes"] if "projected" in v]
    sources = volume["projected"]["sources"]
    assert sources[0] == {"serviceAccountToken": {"path": "token", "expirationSeconds": 3607}}
    assert sources[1]["configMap"]["name"] == "kube-root-ca.crt"
    assert sources[2]["downwardAPI"]["items"] == [
        {"path": "namespace", "fieldRef": {"fieldPath": "metadata.namespace"}}
    ]
    (container,) = pod["containers"]
    mounts = [m for m in container["volumeMounts"] if m["name"] == volume["name"]]
    assert mounts == [{"name": volume["name"], "mountPath": TOKEN_DIR, "readOnly": True}]
    # The smoke Jobs (smokeTest.onUp) get no token.
    with_jobs = render_stack(stack, overrides={"smokeTest.onUp": True})
    for job in with_jobs.of_kind("Job"):
        job_pod = job.inputs["spec"]["template"]["spec"]
        assert not any("projected" in v for v in job_pod.get("volumes", [])), job.name


def test_the_proxy_is_told_to_watch_its_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    env = env_of(render_stack("dev"))
    assert env["LLM_PROXY_KEY_SOURCE"] == "api"
    assert env["LLM_PROXY_KEY_SECRET"] == SECRET
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    loaded = proxy_settings.Settings()
    assert loaded.key_source == "api"
    assert loaded.key_secret == SECRET
    assert loaded.kube_credentials_dir.as_posix() == TOKEN_DIR
    assert loaded.key_file.name == "apiKey"  # the Secret's entry the watch reads


def test_key_source_file_declares_no_rbac_and_mounts_no_token() -> None:
    result = render_stack("dev", overrides={"proxy.keySource": "file"})
    assert result.of_kind("Role") == []
    assert result.of_kind("RoleBinding") == []
    pod = pod_of(result)
    assert not any("projected" in v for v in pod["volumes"])
    env = env_of(result)
    assert env["LLM_PROXY_KEY_SOURCE"] == "file"
    assert "LLM_PROXY_KEY_SECRET" not in env
    (container,) = pod["containers"]
    assert [m["mountPath"] for m in container["volumeMounts"]] == [
        "/etc/llm-gateway/secret",
        "/tmp",
    ]


def test_a_rotation_changes_neither_the_role_nor_the_pods() -> None:
    before = render_stack("dev")
    after = render_stack("dev", key="sk-test-FAKEKEY-rotated")
    for kind in ("Role", "RoleBinding", "Deployment"):
        assert before.one(kind).inputs == after.one(kind).inputs, kind


def test_an_unknown_key_source_is_refused_naming_the_key() -> None:
    result = render_stack("dev", overrides={"proxy.keySource": "watch"}, expect_error=True)
    assert result.resources == []
    assert isinstance(result.error, ConfigError)
    text = str(result.error)
    assert "proxy.keySource" in text
    assert "'api' or 'file'" in text
