"""Caller identity on the real node, proxy plane: apps call with their ServiceAccount token.

The proxy fetches the API server's service-account JWKS with its own projected token and
verifies every caller's token offline. A pod of a listed app, with a projected token, is
served and attributed (log line, metric); the rest is driven from the test with tokens the
API server issues (TokenRequest, as the kubelet gets them), one signed with the node's own
service-account key but expired, and one signed by another key. The node's fake upstream
records every call that reaches it. Tests run in file order on one stack, `ident`.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import httpx
import jwt
import openai
import pytest
import yaml
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.e2e.e2e_kube import Kube
from tests.e2e.e2e_node import proxy_pods, proxy_service_url, upstream_calls
from tests.e2e.e2e_pulumi import FAKE_KEY, Workspace, write_stack_file

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("node")]

STACK = "ident"
NS = "llm-gateway-ident"
APPS_NS = "ident-apps"
AUDIENCE = "llm-gateway"
ISSUER = "https://kubernetes.default.svc"  # scripts/e2e/control-plane.sh
MINI = "gpt-4o-mini"
CLIENTS = [
    {"name": "chat", "namespace": APPS_NS, "serviceAccount": "chat", "tokensPerMinute": 20},
    # batch may use gpt-4o-mini only, though the proxy's allowlist also lets gpt-4o through.
    {"name": "batch", "namespace": APPS_NS, "serviceAccount": "batch", "allowedModels": [MINI]},
]
CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "ping"}]}


def token_for(kube: Kube, account: str, audience: str = AUDIENCE) -> str:
    """A token the API server issues for `account` (TokenRequest, as the kubelet does)."""
    request = {"spec": {"audiences": [audience], "expirationSeconds": 600}}
    answer = kube.core.create_namespaced_service_account_token(account, APPS_NS, request)
    return str(answer.status.token)


def call(url: str, token: str | None, model: str = MINI) -> httpx.Response:
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    body = {**CHAT, "model": model}
    return httpx.post(f"{url}/chat/completions", json=body, headers=headers, timeout=30)


def chats_since(node: dict[str, str], since: float) -> list[dict[str, Any]]:
    calls = upstream_calls(node["LLM_GATEWAY_NODE_UPSTREAM_RECORD"], since)
    return [c for c in calls if c["path"].endswith("/chat/completions")]


def proxy_log_calls(kube: Kube) -> list[dict[str, Any]]:
    lines: list[dict[str, Any]] = []
    for pod in proxy_pods(kube, NS):
        text = kube.core.read_namespaced_pod_log(pod.metadata.name, NS)
        lines += [json.loads(x) for x in text.splitlines() if x.startswith('{"time"')]
    return [line for line in lines if line.get("event") == "call"]


def logged(kube: Kube, count: int, client: str | None = None) -> list[dict[str, Any]]:
    """The proxy's call lines (of `client`, when given), once `count` are there: call lines
    leave the proxy in batches (at most 50 ms late) and reach the kubelet's log after."""
    deadline = time.monotonic() + 10
    while True:
        calls = [c for c in proxy_log_calls(kube) if client is None or c.get("client") == client]
        if len(calls) >= count or time.monotonic() > deadline:
            return calls
        time.sleep(0.2)


def proxy_metrics(kube: Kube) -> str:
    (pod,) = proxy_pods(kube, NS)
    return httpx.get(f"http://{pod.status.pod_ip}:9090/metrics", timeout=10).text


def metric(text: str, series: str) -> float:
    for line in text.splitlines():
        name, _, value = line.rpartition(" ")
        if name == series:
            return float(value)
    return 0.0


def sdk_chat(sdk: openai.OpenAI) -> None:
    sdk.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])


def api_server_ports(kube: Kube) -> list[int]:
    """The ports behind the `kubernetes` Service: what the proxy's egress policy must open."""
    endpoints = kube.core.read_namespaced_endpoints("kubernetes", "default")
    return sorted({p.port for subset in endpoints.subsets or [] for p in subset.ports or []})


def up(ws: Workspace) -> None:
    ws.run("up", "--yes", "--skip-preview", "--stack", STACK)


@pytest.fixture(scope="module")
def url(kube: Kube) -> str:
    return proxy_service_url(kube, NS)


@pytest.fixture(scope="module", autouse=True)
def _api_server_reachable_from_pods(kube: Kube) -> None:
    """The proxy fetches the JWKS from the API server through the `kubernetes` Service; a
    node whose API server advertises loopback cannot serve that to any pod."""
    endpoints = kube.core.read_namespaced_endpoints("kubernetes", "default")
    addresses = [a.ip for subset in endpoints.subsets or [] for a in subset.addresses or []]
    if not addresses or all(ip.startswith("127.") for ip in addresses):
        pytest.skip(
            f"the node's API server advertises {addresses}: pods cannot reach it (needs "
            "scripts/e2e/control-plane.sh to advertise the node's address)"
        )


def test_up_with_identity_required_and_the_smoke_job_passes_with_its_own_token(
    workspace: Workspace, kube: Kube, kubeconfig: str, node: dict[str, str]
) -> None:
    # Let in by the proxy's NetworkPolicy (enforced on the node by kube-router).
    kube.core.create_namespace(
        {"metadata": {"name": APPS_NS, "labels": {"llm-gateway/client": "true"}}}
    )
    for account in ("chat", "batch", "intruder"):
        kube.core.create_namespaced_service_account(APPS_NS, {"metadata": {"name": account}})
    overrides = {
        # The proxy's egress must reach the API server's endpoint port (CNIs match it).
        "proxy": {
            "image": node["LLM_GATEWAY_NODE_PROXY_IMAGE"],
            "allowedModels": [MINI, "gpt-4o"],
            "apiServerPorts": api_server_ports(kube),
        },
        "agentgateway": {"enabled": False},
        "identity": {"mode": "require"},
        "smokeTest": {"onUp": True},
    }
    write_stack_file(workspace, STACK, NS, overrides)
    stack_file = workspace.project / "stacks" / f"Pulumi.{STACK}.yaml"
    config = yaml.safe_load(stack_file.read_text())
    config["config"]["llm-gateway:clients"] = CLIENTS
    stack_file.write_text(yaml.safe_dump(config))
    workspace.run("stack", "init", STACK, "--secrets-provider", "passphrase")
    workspace.run("config", "set", "--stack", STACK, "kubeconfig", kubeconfig)
    upstream = node["LLM_GATEWAY_NODE_UPSTREAM_URL"]
    workspace.run("config", "set", "--stack", STACK, "openaiBaseUrl", upstream)
    workspace.set_secret("openaiKey", FAKE_KEY, STACK)
    began = time.time()
    up(workspace)  # awaits the smoke Job: the llm-smoke token was verified by the proxy
    assert len(chats_since(node, began)) == 1
    assert [c["status"] for c in logged(kube, 1, "llm-smoke")] == [200]


def test_a_listed_apps_pod_with_a_projected_token_is_served_and_attributed(
    kube: Kube, node: dict[str, str], url: str
) -> None:
    image = node["LLM_GATEWAY_NODE_PROXY_IMAGE"]
    pod = {
        "metadata": {"name": "batch-app"},
        "spec": {
            "serviceAccountName": "batch",
            "restartPolicy": "Never",
            "containers": [
                {
                    "name": "app",
                    "image": image,
                    "command": ["python", "-m", "proxy", "smoke", "--url", url,
                                "--token-file", "/var/run/secrets/llm-gateway/token"],
                    "volumeMounts": [{"name": "llm-token",
                                      "mountPath": "/var/run/secrets/llm-gateway"}],
                }
            ],
            "volumes": [
                {
                    "name": "llm-token",
                    "projected": {"sources": [{"serviceAccountToken": {
                        "audience": AUDIENCE, "path": "token", "expirationSeconds": 3600}}]},
                }
            ],
        },
    }  # fmt: skip
    kube.core.create_namespaced_pod(APPS_NS, pod)
    deadline = time.monotonic() + 120
    phase = "Pending"
    while time.monotonic() < deadline:
        phase = kube.core.read_namespaced_pod("batch-app", APPS_NS).status.phase
        if phase in ("Succeeded", "Failed"):
            break
        time.sleep(1)
    output = kube.core.read_namespaced_pod_log("batch-app", APPS_NS)
    assert phase == "Succeeded", output
    assert output.startswith("ok: gpt-4o-mini replied")
    assert [c["status"] for c in logged(kube, 1, "batch")] == [200]
    text = proxy_metrics(kube)
    assert metric(text, 'llm_proxy_client_requests_total{client="batch",status="200"}') == 1
    assert metric(text, 'llm_proxy_client_tokens_total{client="batch",kind="prompt"}') == 11


def test_missing_foreign_expired_and_forged_tokens_get_401_and_unlisted_apps_403(
    kube: Kube, kubeconfig: str, node: dict[str, str], url: str
) -> None:
    real = token_for(kube, "batch")
    kid = jwt.get_unverified_header(real)["kid"]
    now = int(time.time())
    claims = {
        "aud": [AUDIENCE],
        "iss": ISSUER,
        "sub": f"system:serviceaccount:{APPS_NS}:batch",
        "iat": now - 7200,
        "nbf": now - 7200,
        "exp": now - 3600,
        "kubernetes.io": {"namespace": APPS_NS, "serviceaccount": {"name": "batch", "uid": "x"}},
    }
    # The node's own service-account signing key (scripts/e2e/control-plane.sh), so only
    # the expiry is wrong; and the same claims, unexpired, signed by a key of our own.
    node_key = (Path(kubeconfig).parent / "pki" / "sa.key").read_bytes()
    expired = jwt.encode(claims, node_key, algorithm="RS256", headers={"kid": kid})
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = jwt.encode(
        {**claims, "exp": now + 3600}, stranger, algorithm="RS256", headers={"kid": kid}
    )
    began = time.time()
    cases = {
        "none": (None, 401, "none was sent"),
        "other audience": (token_for(kube, "batch", "vault"), 401, "audience is not"),
        "expired": (expired, 401, "has expired"),
        "other signer": (forged, 401, "signature does not verify"),
        "unlisted": (token_for(kube, "intruder"), 403, f"{APPS_NS}/intruder is not a client"),
    }
    for case, (token, status, words) in cases.items():
        answer = call(url, token)
        assert answer.status_code == status, (case, answer.text)
        assert words in answer.json()["error"]["message"], case
        if token is not None:
            assert token not in answer.text
            assert token.split(".")[2] not in "\n".join(map(str, proxy_log_calls(kube)))
    # A listed app asking for a model outside its own list (the proxy allows it to others).
    outside = call(url, real, "gpt-4o")
    assert outside.status_code == 403, outside.text
    assert "not allowed for client 'batch'; its allowed models: gpt-4o-mini" in outside.text
    assert chats_since(node, began) == []  # none reached the upstream
    assert call(url, real).status_code == 200  # the valid one, for contrast


def test_an_app_over_its_token_budget_gets_429_until_the_window_ends(
    kube: Kube, node: dict[str, str], url: str
) -> None:
    chat_token, batch_token = token_for(kube, "chat"), token_for(kube, "batch")
    # The official SDK, reading the token per call as an app with a token file would.
    token_file = Path(os.environ.get("TMPDIR", "/tmp")) / "chat-token"
    token_file.write_text(chat_token)
    sdk = openai.OpenAI(base_url=url, api_key=lambda: token_file.read_text(), max_retries=0)
    # A minute window that does not end between the calls below.
    if time.time() % 60 > 50:
        time.sleep(61 - time.time() % 60)
    sdk_chat(sdk)  # 12 tokens
    sdk_chat(sdk)  # 24 of 20
    began = time.time()
    with pytest.raises(openai.RateLimitError) as refused:
        sdk_chat(sdk)
    headers = refused.value.response.headers
    retry_after = int(headers["Retry-After"])
    assert 0 < retry_after <= 60
    assert headers["x-ratelimit-limit-tokens"] == "20"
    assert chats_since(node, began) == []  # the upstream saw no call
    assert call(url, batch_token).status_code == 200  # another app is unaffected meanwhile
    time.sleep(retry_after + 1)
    sdk_chat(sdk)  # served again in the next window
    assert [c["status"] for c in logged(kube, 4, "chat")] == [200, 200, 429, 200]
    text = proxy_metrics(kube)
    assert metric(text, 'llm_proxy_client_requests_total{client="chat",status="429"}') == 1


def test_attribute_mode_serves_tokenless_calls_as_anonymous(
    workspace: Workspace, kube: Kube, url: str
) -> None:
    workspace.run("config", "set", "--path", "identity.mode", "attribute", "--stack", STACK)
    up(workspace)  # a rollout: the old pod (require) leaves the Service as it terminates
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        every = kube.core.list_namespaced_pod(NS, label_selector="app.kubernetes.io/name=llm-proxy")
        if len(every.items) == 1:
            break
        time.sleep(1)
    assert len(every.items) == 1, "the old proxy pod did not go"
    answer = call(url, None)
    assert answer.status_code == 200
    assert call(url, "sk-dummy-keyless-app").status_code == 200
    assert call(url, token_for(kube, "intruder")).status_code == 200
    clients = [c.get("client") for c in logged(kube, 3)]
    assert clients[-3:] == ["anonymous", "anonymous", f"{APPS_NS}/intruder"]
    text = proxy_metrics(kube)
    assert metric(text, 'llm_proxy_client_requests_total{client="anonymous",status="200"}') == 2
    assert metric(text, 'llm_proxy_client_requests_total{client="other",status="200"}') == 1


def test_destroy(workspace: Workspace, kube: Kube) -> None:
    workspace.run("destroy", "--yes", "--skip-preview", "--stack", STACK)
    kube.core.delete_namespace(APPS_NS)
    assert kube.wait_gone("Namespace", NS, timeout=120)
