"""key_source=api: the proxy watches its Secret through a (fake) Kubernetes API on loopback.

The fake speaks the real list/watch protocol (fakes/kube_api.py). What is
proven: an update reaches /readyz and the upstream in well under a second while the mounted
file still holds the old key; the watch resumes after the server cuts it, relists on 410
Gone, falls back to the file when the API is down at start or the watch stays broken past
its grace, survives the Secret's deletion, and never serves no key while a source has one;
with workers, the supervisor alone watches. The key is in no log line, /readyz or metric.
"""

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web

from fakes.kube_api import FakeKubeApi, serving_tls, start_fake_kube_api
from fakes.kubelet_secret_dir import KubeletSecretDir
from proxy.fingerprint import key_fingerprint
from proxy.key_file import LiveKey
from proxy.secret_watch import api_target, secret_key
from proxy.settings import Settings
from tests.support.net import free_port
from tests.support.proxy import FAKE_KEY, ROOT, SECOND_KEY, LoopThread, ProxyHandle, metric
from tests.support.workers import Pod

NS, SECRET = "llm-gateway", "openai-api-key"
TOKEN = "sa-token-FAKE-never-logged-0123456789"
THIRD_KEY = "sk-test-FAKEKEY-third-00112233445566778899"
CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


class KubeApi:
    """The fake on its own loop thread, restartable on the same port."""

    def __init__(self, loop: LoopThread) -> None:
        self.loop = loop
        self.fake = FakeKubeApi(NS, TOKEN, allowed={SECRET, "other-secret"})
        self.runner: web.AppRunner | None = None
        self.port = free_port()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.runner, _ = self.loop.run(start_fake_kube_api(self.fake, self.port))

    def stop(self) -> None:
        """Down: open watches cut, connections refused."""
        if self.runner is not None:
            self.call(self.fake.drop_watches)
            self.loop.run(self.runner.cleanup())
            self.runner = None

    def call(self, action: Callable[..., None], *args: Any) -> None:
        async def run() -> None:
            action(*args)

        self.loop.run(run())


@pytest.fixture(scope="module")
def kube_loop() -> LoopThread:
    return LoopThread("fake-kube-api")


@pytest.fixture
def kube_api(kube_loop: LoopThread) -> Iterator[KubeApi]:
    api = KubeApi(kube_loop)
    api.call(api.fake.put, SECRET, FAKE_KEY)
    api.start()
    yield api
    api.stop()


@pytest.fixture
def creds(tmp_path: Path) -> Path:
    """The pod's ServiceAccount directory: token and namespace (no CA: the fake is http)."""
    path = tmp_path / "serviceaccount"
    path.mkdir()
    (path / "token").write_text(TOKEN + "\n")
    (path / "namespace").write_text(NS)
    return path


@pytest.fixture
def api_proxy(
    start_proxy: Callable[..., ProxyHandle], kube_api: KubeApi, creds: Path
) -> Callable[..., ProxyHandle]:
    def factory(**overrides: Any) -> ProxyHandle:
        fields = {
            "key_source": "api",
            "key_secret": SECRET,
            "kube_api": kube_api.url,
            "kube_credentials_dir": creds,
        }
        return start_proxy(**{**fields, **overrides})

    return factory


def readyz(proxy_url: str) -> dict[str, Any]:
    body: dict[str, Any] = httpx.get(proxy_url + "/readyz", timeout=5).json()
    return body


def wait_for(proxy_url: str, check: Callable[[dict[str, Any]], bool], seconds: float = 5) -> float:
    """Seconds until /readyz satisfies `check`; fails with the last answer after `seconds`."""
    began = time.monotonic()
    while True:
        body = readyz(proxy_url)
        if check(body):
            return time.monotonic() - began
        assert time.monotonic() - began < seconds, f"/readyz still says {body}"
        time.sleep(0.01)


def serves(key: str, source: str) -> Callable[[dict[str, Any]], bool]:
    return lambda body: (
        body["keyFingerprint"] == key_fingerprint(key) and (body["keySource"] == source)
    )


def assert_no_secrets(text: str) -> None:
    for secret in (FAKE_KEY, SECOND_KEY, THIRD_KEY, TOKEN):
        assert secret not in text


# -- the watch in one process --------------------------------------------------------------


def test_an_update_is_served_at_once_while_the_file_still_holds_the_old_key(
    api_proxy: Callable[..., ProxyHandle], kube_api: KubeApi, upstream: Any
) -> None:
    proxy = api_proxy()
    wait_for(proxy.root_url, serves(FAKE_KEY, "api"))
    kube_api.call(kube_api.fake.put, SECRET, SECOND_KEY)
    took = wait_for(proxy.root_url, serves(SECOND_KEY, "api"))
    assert took < 1.0
    body = readyz(proxy.root_url)
    assert body["status"] == "ready"
    assert body["keyApi"] == "watching"
    assert httpx.post(proxy.base_url + "/chat/completions", json=CHAT).status_code == 200
    assert upstream.fake.seen.authorizations[-1] == f"Bearer {SECOND_KEY}"
    events = [json.loads(line) for line in proxy.log_lines()]
    reloads = [e for e in events if e["event"] == "key_reloaded"]
    assert [e["keyFingerprint"] for e in reloads] == [key_fingerprint(SECOND_KEY)]  # once
    scraped = httpx.get(proxy.root_url + "/metrics").text
    assert metric(scraped, 'llm_proxy_key_source{source="api"}') == 1
    assert metric(scraped, 'llm_proxy_key_source{source="file"}') == 0
    assert kube_api.fake.lists == 1  # one list, then the watch carried the update
    assert_no_secrets(proxy.log.getvalue() + scraped + json.dumps(body))


def test_the_watch_resumes_after_the_server_cuts_it(
    api_proxy: Callable[..., ProxyHandle], kube_api: KubeApi
) -> None:
    proxy = api_proxy()
    wait_for(proxy.root_url, serves(FAKE_KEY, "api"))
    kube_api.call(kube_api.fake.drop_watches)
    kube_api.call(kube_api.fake.put, SECRET, SECOND_KEY)  # while no watch is open
    wait_for(proxy.root_url, serves(SECOND_KEY, "api"))
    assert kube_api.fake.watches >= 2
    assert kube_api.fake.lists == 1  # resumed from its resourceVersion: no relist needed


def test_410_gone_makes_it_list_again(
    api_proxy: Callable[..., ProxyHandle], kube_api: KubeApi
) -> None:
    proxy = api_proxy()
    wait_for(proxy.root_url, serves(FAKE_KEY, "api"))
    kube_api.call(kube_api.fake.put, "unrelated", "x")  # moves the version on
    kube_api.call(kube_api.fake.drop_watches)
    kube_api.call(kube_api.fake.put, SECRET, SECOND_KEY)
    kube_api.call(kube_api.fake.compact)  # the watch's version is now too old
    wait_for(proxy.root_url, serves(SECOND_KEY, "api"))
    assert kube_api.fake.lists == 2


def test_a_server_that_answers_every_watch_with_410_is_backed_off_from(
    api_proxy: Callable[..., ProxyHandle], kube_api: KubeApi
) -> None:
    kube_api.fake.oldest = 10**9  # every watch's version counts as compacted
    proxy = api_proxy()
    wait_for(proxy.root_url, lambda b: "410 Gone" in b["keyApi"])
    time.sleep(1)
    assert kube_api.fake.lists <= 6  # backoff from 0.25 s: not a tight relist loop
    assert readyz(proxy.root_url)["keyFingerprint"] == key_fingerprint(FAKE_KEY)


def test_api_down_at_start_serves_the_file_then_the_api_once_it_is_up(
    api_proxy: Callable[..., ProxyHandle], kube_api: KubeApi, secret_dir: KubeletSecretDir
) -> None:
    kube_api.stop()
    proxy = api_proxy()
    body = readyz(proxy.root_url)
    assert body["status"] == "ready"
    assert body["keyFingerprint"] == key_fingerprint(FAKE_KEY)
    assert body["keySource"] == "file"
    wait_for(proxy.root_url, lambda b: b["keyApi"].startswith("broken: "))
    assert httpx.post(proxy.base_url + "/chat/completions", json=CHAT).status_code == 200
    kube_api.call(kube_api.fake.put, SECRET, SECOND_KEY)
    kube_api.start()
    wait_for(proxy.root_url, serves(SECOND_KEY, "api"), seconds=10)  # backoff <= 5 s
    events = [json.loads(line) for line in proxy.log_lines()]
    sources = [e["keySource"] for e in events if e["event"] == "key_source"]
    assert sources == ["file", "api"]
    assert_no_secrets(proxy.log.getvalue())


def test_a_watch_broken_past_its_grace_serves_the_file_and_never_no_key(
    api_proxy: Callable[..., ProxyHandle], kube_api: KubeApi, upstream: Any
) -> None:
    kube_api.call(kube_api.fake.put, SECRET, SECOND_KEY)  # the file still holds FAKE_KEY
    proxy = api_proxy(key_api_grace=0.5)
    wait_for(proxy.root_url, serves(SECOND_KEY, "api"))
    kube_api.stop()
    # Within the grace the watch's last key stays; past it, the file's. Never none.
    seen: set[tuple[str | None, str]] = set()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        body = readyz(proxy.root_url)
        seen.add((body["keyFingerprint"], body["keySource"]))
        assert body["status"] == "ready", body
        if body["keySource"] == "file":
            break
        time.sleep(0.02)
    assert seen == {(key_fingerprint(SECOND_KEY), "api"), (key_fingerprint(FAKE_KEY), "file")}
    assert readyz(proxy.root_url)["keyApi"].startswith("broken: ")
    scraped = httpx.get(proxy.root_url + "/metrics").text
    assert metric(scraped, 'llm_proxy_key_source{source="file"}') == 1
    assert httpx.post(proxy.base_url + "/chat/completions", json=CHAT).status_code == 200
    assert upstream.fake.seen.authorizations[-1] == f"Bearer {FAKE_KEY}"


def test_a_deleted_secret_falls_back_to_the_file_without_a_crash(
    api_proxy: Callable[..., ProxyHandle], kube_api: KubeApi
) -> None:
    kube_api.call(kube_api.fake.put, SECRET, SECOND_KEY)
    proxy = api_proxy()
    wait_for(proxy.root_url, serves(SECOND_KEY, "api"))
    kube_api.call(kube_api.fake.delete, SECRET)
    wait_for(proxy.root_url, serves(FAKE_KEY, "file"))
    assert readyz(proxy.root_url)["keyApi"] == "watching: the Secret was deleted"
    kube_api.call(kube_api.fake.put, SECRET, THIRD_KEY)  # created again: back on the API
    wait_for(proxy.root_url, serves(THIRD_KEY, "api"))


def test_an_unusable_entry_is_not_served_and_says_why(
    api_proxy: Callable[..., ProxyHandle], kube_api: KubeApi
) -> None:
    proxy = api_proxy()
    wait_for(proxy.root_url, serves(FAKE_KEY, "api"))
    two_lines = f"{SECOND_KEY}\n{THIRD_KEY}"
    kube_api.call(kube_api.fake.put, SECRET, two_lines)
    wait_for(proxy.root_url, serves(FAKE_KEY, "file"))
    why = readyz(proxy.root_url)["keyApi"]
    assert "'apiKey' entry: holds whitespace or control characters" in why
    assert_no_secrets(why + proxy.log.getvalue())


def test_a_refused_token_is_said_on_readyz_and_the_file_served(
    api_proxy: Callable[..., ProxyHandle], kube_api: KubeApi, creds: Path
) -> None:
    (creds / "token").write_text("not-the-token")
    proxy = api_proxy()
    wait_for(proxy.root_url, lambda b: "HTTP 401" in b["keyApi"])
    assert readyz(proxy.root_url)["keySource"] == "file"
    (creds / "token").write_text(TOKEN)  # the kubelet refreshed it: re-read per request
    wait_for(proxy.root_url, serves(FAKE_KEY, "api"), seconds=10)


def test_file_mode_leaves_readyz_as_it_was(start_proxy: Callable[..., ProxyHandle]) -> None:
    proxy = start_proxy()
    assert set(readyz(proxy.root_url)) == {"status", "keyFingerprint"}


def test_over_tls_it_trusts_the_cluster_ca_from_the_credentials_dir(
    start_proxy: Callable[..., ProxyHandle], kube_loop: LoopThread, creds: Path, tmp_path: Path
) -> None:
    context, ca_file = serving_tls(tmp_path)
    fake = FakeKubeApi(NS, TOKEN, allowed={SECRET})
    fake.put(SECRET, SECOND_KEY)  # not served yet: no loop needed
    runner, port = kube_loop.run(start_fake_kube_api(fake, 0, context))
    try:
        fields = {
            "key_source": "api",
            "key_secret": SECRET,
            "kube_api": f"https://127.0.0.1:{port}",
        }
        untrusted = start_proxy(**fields, kube_credentials_dir=creds)  # no ca.crt there yet
        wait_for(untrusted.root_url, lambda b: "CERTIFICATE_VERIFY_FAILED" in b["keyApi"])
        assert readyz(untrusted.root_url)["keySource"] == "file"
        (creds / "ca.crt").write_bytes(ca_file.read_bytes())
        proxy = start_proxy(**fields, kube_credentials_dir=creds)
        wait_for(proxy.root_url, serves(SECOND_KEY, "api"))
    finally:
        kube_loop.run(runner.cleanup())


# -- pieces --------------------------------------------------------------------------------


def test_secret_key_reads_only_a_usable_entry() -> None:
    def secret(data: dict[str, str]) -> dict[str, Any]:
        return {"metadata": {"name": SECRET}, "data": data}

    encoded = "c2stdGVzdA=="  # "sk-test"
    key, why = secret_key(secret({"apiKey": encoded}), "apiKey")
    assert isinstance(key, LiveKey)
    assert key.value == "sk-test"
    assert why == "ok"
    assert secret_key(None, "apiKey") == (None, "the Secret does not exist")
    assert secret_key(secret({}), "apiKey") == (None, "the Secret has no 'apiKey' entry")
    assert secret_key(secret({"apiKey": "%%%"}), "apiKey")[1].endswith("not base64 UTF-8 text")
    assert secret_key(secret({"apiKey": ""}), "apiKey")[1].endswith("entry: empty")


def test_the_target_comes_from_the_pod(creds: Path) -> None:
    settings = Settings(key_source="api", key_secret=SECRET, kube_credentials_dir=creds)
    env = {"KUBERNETES_SERVICE_HOST": "10.0.0.1", "KUBERNETES_SERVICE_PORT": "443"}
    target = api_target(settings, env)
    assert not isinstance(target, str)
    assert target is not None
    assert target.list_url == f"https://10.0.0.1:443/api/v1/namespaces/{NS}/secrets"
    assert target.field_selector == f"metadata.name={SECRET}"
    assert target.entry == "apiKey"
    assert target.token_file == creds / "token"
    assert api_target(settings, {}) == (
        "KUBERNETES_SERVICE_HOST/PORT are unset (not in a pod?) and no kube_api"
    )
    assert api_target(Settings(), env) is None


def test_api_without_a_secret_name_is_refused_before_start() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLM_PROXY_")}
    done = subprocess.run(
        [sys.executable, "-m", "proxy", "serve", "--key-source", "api"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2
    assert "key_source=api needs the Secret's name: set LLM_PROXY_KEY_SECRET" in done.stderr


# -- workers: the supervisor alone watches --------------------------------------------------


@pytest.mark.timeout(60)
def test_with_workers_the_supervisor_alone_watches_and_every_worker_switches(
    kube_api: KubeApi, creds: Path, proxy_env: dict[str, str]
) -> None:
    env = {
        **proxy_env,
        "LLM_PROXY_WORKERS": "2",
        "LLM_PROXY_KEY_SOURCE": "api",
        "LLM_PROXY_KEY_SECRET": SECRET,
        "LLM_PROXY_KUBE_API": kube_api.url,
        "LLM_PROXY_KUBE_CREDENTIALS_DIR": str(creds),
    }
    pod = Pod(env)
    try:
        workers = pod.answering_workers()
        assert len(workers) == 2
        wait_for(pod.root, serves(FAKE_KEY, "api"))
        kube_api.call(kube_api.fake.put, SECRET, SECOND_KEY)
        wait_for(pod.root, serves(SECOND_KEY, "api"))
        # Every worker answers with the new key (a fresh connection per call).
        answers: dict[int, tuple[str, str]] = {}
        for _ in range(200):
            body = httpx.get(pod.root + "/readyz", timeout=5).json()
            answers[body["worker"]] = (body["keyFingerprint"], body["keySource"])
            if len(answers) == 2:
                break
        assert set(answers.values()) == {(key_fingerprint(SECOND_KEY), "api")}
        assert kube_api.fake.max_open_watches == 1  # one watch for the pod
        assert kube_api.fake.lists == 1
        scraped = httpx.get(pod.root + "/metrics", timeout=5).text
        assert metric(scraped, 'llm_proxy_key_source{source="api"}') == 1
    finally:
        pod.stop()
    assert pod.process.stdout is not None
    lines = json.dumps(pod.lines) + pod.process.stdout.read()
    assert key_fingerprint(SECOND_KEY) in lines
    assert_no_secrets(lines)
