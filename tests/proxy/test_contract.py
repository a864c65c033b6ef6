"""proxy/contract.py is the one place a proxy setting, port or path is declared.

Both sides are held to it: the Deployment the Pulumi program renders is read back by the
proxy's own Settings, the README table is the generated one, the same upstream URLs are
refused on both sides, and a running proxy answers on the contract's probe paths.
"""

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from components.config_model import AppConfig, LlmGatewayConfig, ProxyConfig
from components.identity import ProxyIdentity
from components.shapes import deployment
from proxy import contract
from proxy.cli import _parser
from proxy.settings import Settings
from tests.support.proxy import ProxyHandle

README = Path(__file__).resolve().parents[2] / "proxy" / "README.md"
SPECS = contract.specs()


def test_the_readme_settings_table_is_the_generated_one() -> None:
    text = README.read_text(encoding="utf-8")
    start, end = "<!-- settings-table", "<!-- /settings-table -->"
    table = text[text.index("\n", text.index(start)) + 1 : text.index(end)].strip()
    current = contract.settings_table()
    assert table == current, f"proxy/README.md is stale; the current table:\n{current}"


def test_every_contract_setting_is_a_setting_a_flag_and_has_its_contract_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in SPECS:
        monkeypatch.delenv(contract.env_name(name), raising=False)
    assert list(Settings.model_fields) == list(SPECS)
    loaded = Settings()
    for name, (_, spec, default) in SPECS.items():
        assert spec.doc, name
        assert getattr(loaded, name) == default, name
    commands: Any = _parser()._subparsers
    flags = commands._group_actions[0].choices["serve"]
    assert {a.dest for a in flags._actions} - {"help"} == set(SPECS)


def _container(proxy: dict[str, Any], identity: ProxyIdentity | None) -> dict[str, Any]:
    rendered = deployment.deployment(
        "llm-proxy",
        "llm-gateway",
        config=ProxyConfig.model_validate({"image": "registry.example/llm-proxy:1", **proxy}),
        replicas=1,
        upstream_url="https://llm.example.com/openai/v1",
        secret_name="openai-api-key",
        service_account="llm-proxy",
        skip_await=False,
        identity=identity,
    )
    spec: Any = rendered["spec"]
    template = spec["template"]
    (container,) = template["spec"]["containers"]
    return dict(container)


def _loaded_from(container: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> Settings:
    for name in SPECS:
        monkeypatch.delenv(contract.env_name(name), raising=False)
    for variable in container["env"]:
        monkeypatch.setenv(variable["name"], variable["value"])
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1")  # as in a pod
    return Settings()


def test_what_the_deployment_writes_is_what_the_proxy_reads(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app = {
        "name": "chat",
        "namespace": "team-ai",
        "serviceAccount": "chat",
        "tokensPerMinute": 1000,
    }
    apps = (AppConfig.model_validate(app),)
    identity = ProxyIdentity("require", "llm-gateway", None, apps, "llm-gateway", shares=3)
    proxy = {"allowedModels": ["gpt-4o-mini", "gpt-4.1"], "allowUnpolicedPaths": True,
             "maxInFlight": 7, "connectTimeout": 2.5, "keySource": "api"}  # fmt: skip
    container = _container(proxy, identity)
    assert all(v["name"].startswith(contract.ENV_PREFIX) for v in container["env"])
    settings = _loaded_from(container, monkeypatch)

    assert settings.allowed_models == ("gpt-4o-mini", "gpt-4.1")
    assert settings.allow_unpoliced_paths is True
    assert (settings.max_in_flight, settings.connect_timeout) == (7, 2.5)
    assert settings.upstream == "https://llm.example.com/openai/v1"
    assert settings.key_file == Path(contract.KEY_FILE)
    assert (settings.key_source, settings.key_secret) == ("api", "openai-api-key")
    assert (settings.port, settings.metrics_port) == (contract.API_PORT, contract.METRICS_PORT)
    assert settings.drain_timeout == deployment.DRAIN_TIMEOUT_SECONDS
    assert settings.identity_mode == "require"
    assert settings.identity_shares == 3
    clients = {c.name: c for c in settings.clients}
    assert clients["chat"].tokens_per_minute == 1000
    assert clients["llm-smoke"].service_account == "llm-smoke"
    probes = {container[p]["http_get"]["path"] for p in ("liveness_probe", "readiness_probe")}
    assert probes == {contract.HEALTH_PATH, contract.READY_PATH}


@pytest.mark.parametrize(
    ("key_source", "identity_on"), [("api", False), ("file", True), ("api", True)]
)
def test_the_secret_watch_and_the_jwks_fetch_share_one_credentials_mount(
    key_source: str, identity_on: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    identity = ProxyIdentity("attribute", "llm-gateway", None, (), "llm-gateway", 1)
    container = _container({"keySource": key_source}, identity if identity_on else None)
    credentials = [m for m in container["volume_mounts"] if m["name"] != "api-key"]
    credentials = [m for m in credentials if m["mount_path"] != "/tmp"]
    assert [m["mount_path"] for m in credentials] == [contract.POD_CREDENTIALS_DIR]
    settings = _loaded_from(container, monkeypatch)
    directory = settings.kube_credentials_dir
    assert directory == Path(contract.POD_CREDENTIALS_DIR)
    assert settings.identity_token_file == directory / contract.TOKEN_FILE_NAME
    assert settings.identity_ca_file == directory / contract.CA_FILE_NAME


def test_a_proxy_without_the_api_needs_no_credentials_mount() -> None:
    container = _container({"keySource": "file"}, None)
    assert contract.POD_CREDENTIALS_DIR not in [m["mount_path"] for m in container["volume_mounts"]]


def test_the_encoders_refuse_what_the_decoders_could_not_read_back() -> None:
    with pytest.raises(TypeError, match="not a proxy setting"):
        contract.proxy_env(alowed_models=["gpt-4o"])
    with pytest.raises(ValueError, match="comma"):
        contract.proxy_env(allowed_models=["gpt-4o,gpt-4.1"])
    models = ("gpt-4o", "o1-mini")
    assert contract.decode_models(contract.encode_models(models)) == models
    apps = [{"name": "a", "namespace": "n", "serviceAccount": "s", "tokensPerDay": 5}]
    assert list(contract.decode_clients(contract.encode_clients(apps))) == apps
    assert contract.decode_clients("") == ()
    assert json.loads(contract.proxy_env(clients=apps)["LLM_PROXY_CLIENTS"]) == apps


SECRET = "hunter2-contract"  # a recognisable fake


@pytest.mark.parametrize(
    "url",
    [
        f"https://user:{SECRET}@api.example/v1",
        f"https://api.example/v1?api-key={SECRET}",
        f"https://api.example/v1#{SECRET}",
        "ftp://api.example/v1",
        "https:///v1",
        "https://api.example:99999/v1",
    ],
)
def test_both_sides_refuse_the_same_upstream_urls_without_echoing_them(url: str) -> None:
    with pytest.raises(ValidationError) as at_start:
        Settings(upstream=url)
    with pytest.raises(ValidationError) as at_preview:
        LlmGatewayConfig.model_validate({"openaiBaseUrl": url, "proxy": {"image": "p:1"}})
    for refused in (at_start.value, at_preview.value):
        messages = " ".join(str(e["msg"]) for e in refused.errors())
        assert "must" in messages or "valid URL" in messages
        assert SECRET not in messages


def test_a_running_proxy_answers_on_the_contract_paths(proxy: ProxyHandle) -> None:
    root = proxy.root_url
    assert httpx.get(root + contract.HEALTH_PATH, timeout=5).status_code == 200
    assert httpx.get(root + contract.READY_PATH, timeout=5).json()["status"] == "ready"
    assert "llm_proxy_in_flight" in httpx.get(root + contract.METRICS_PATH, timeout=5).text
