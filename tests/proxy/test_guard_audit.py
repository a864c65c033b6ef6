"""A mutation audit: one test per guard that no test would miss if it broke.

Each test names the one-line breakage it catches.
"""

import json
import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from fakes.kubelet_secret_dir import KubeletSecretDir
from proxy import server
from proxy.key_file import LiveKey
from proxy.observability import Metrics
from proxy.policy.json_scan import shown_name
from proxy.settings import Settings
from proxy.workers import RESTART_LIMIT, STOP_GRACE, Supervisor, _listen
from tests.support.proxy import (
    FAKE_KEY,
    SECOND_KEY,
    ProxyHandle,
    Upstream,
    assert_openai_error,
    metric,
)
from tests.support.workers import Pod, children


@pytest.fixture
def guarded(start_proxy: Callable[..., ProxyHandle]) -> ProxyHandle:
    return start_proxy(allowed_models="gpt-4o-mini")


# -- allowlist -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["Model", "MODEL", "mOdEl"])
def test_a_model_query_parameter_in_any_case_is_checked(
    guarded: ProxyHandle, upstream: Upstream, name: str
) -> None:
    """Breakage: `name.casefold() == "model"` → `name == "model"` in Allowlist._check_head."""
    refused = httpx.get(guarded.base_url + f"/models?{name}=o1-pro")
    assert_openai_error(refused, 403, "model_not_allowed")
    assert upstream.fake.seen.paths == []


def test_an_unreadable_declared_form_is_refused_even_when_json_names_an_allowed_model(
    guarded: ProxyHandle, upstream: Upstream
) -> None:
    """Breakage: dropping `found.unreadable or` from Allowlist.check_body."""
    refused = httpx.post(
        guarded.base_url + "/chat/completions",
        content=b'{"model":"gpt-4o-mini","messages":[]}',
        headers={"content-type": "multipart/form-data"},  # no boundary: unreadable as a form
    )
    assert_openai_error(refused, 400, "model_required")
    assert upstream.fake.seen.paths == []


@pytest.mark.parametrize("target", ["/v1/models%2Fgpt-4o", "/v1/models%2fx", "/v1/models%5Cx"])
def test_an_encoded_separator_without_dots_is_refused(
    proxy: ProxyHandle, upstream: Upstream, target: str
) -> None:
    """Breakage: removing the _ENCODED_SEPARATOR check in target.check_path (every other
    test path also holds `..`, which the dot-segment check refuses on its own)."""
    refused = httpx.get(proxy.root_url + target)
    assert_openai_error(refused, 400, "invalid_path")
    assert upstream.fake.seen.paths == []


# -- model labels --------------------------------------------------------------------------


def test_at_most_64_names_beyond_the_allowlist_become_model_labels() -> None:
    """Breakage: `_free_slots` never decremented, or its limit raised."""
    metrics = Metrics(("allowed-model",))
    labels = [metrics.model_label(f"model-{i}") for i in range(70)]
    assert labels[:64] == [f"model-{i}" for i in range(64)]
    assert labels[64:] == ["other"] * 6
    assert metrics.model_label("allowed-model") == "allowed-model"  # never crowded out


def test_a_non_ascii_name_is_labelled_other() -> None:
    """Breakage: the ASCII check in observability._labelable (the escaping in shown_name
    hides it on the request path, so this asks the label rule directly)."""
    metrics = Metrics()
    assert metrics.model_label("gpt-\u00fc") == "other"
    assert metrics.model_label("gpt\x1b[2J") == "other"
    assert metrics.model_label("gpt-4o") == "gpt-4o"


def test_shown_model_names_are_escaped() -> None:
    """Breakage: shown_name returning the text as is (the label rule would hide it)."""
    assert shown_name("gpt-\u00fc\x1b[2J") == "gpt-\\u00fc\\u001b[2J"
    assert shown_name("gpt-4o") == "gpt-4o"


def test_a_refused_non_ascii_name_is_escaped_in_answer_log_and_labels(
    guarded: ProxyHandle,
) -> None:
    refused = httpx.post(guarded.base_url + "/chat/completions", json={"model": "gpt-\u00fc\x1b"})
    message = refused.json()["error"]["message"]
    assert "gpt-\\u00fc\\u001b" in message
    assert "\x1b" not in message
    (call,) = guarded.calls(1)
    assert call["model"] == "gpt-\\u00fc\\u001b"
    text = httpx.get(guarded.root_url + "/metrics").text
    series = 'llm_proxy_requests_total{model="other",path="/v1/chat/completions",status="403"}'
    assert metric(text, series) == 1


# -- workers -------------------------------------------------------------------------------


@pytest.fixture
def pod(proxy_env: dict[str, str]) -> Iterator[Pod]:
    started = Pod({**proxy_env, "LLM_PROXY_WORKERS": "2", "LLM_PROXY_KEY_POLL_INTERVAL": "0.05"})
    yield started
    started.stop()


def test_more_than_five_worker_deaths_a_minute_stop_the_pod(pod: Pod) -> None:
    """Breakage: the RESTART_LIMIT check in Supervisor._reap never tripping."""
    for death in range(RESTART_LIMIT + 1):
        victim = min(children(pod.process.pid))
        os.kill(victim, signal.SIGKILL)
        pod.wait_for("worker_exited", 5)
        if death < RESTART_LIMIT:
            deadline = time.monotonic() + 5
            while victim in children(pod.process.pid) or len(children(pod.process.pid)) < 2:
                assert time.monotonic() < deadline, "no replacement worker"
                time.sleep(0.02)
    failing = pod.wait_for("workers_failing", 5)
    assert failing["restarts"] == RESTART_LIMIT + 1
    assert pod.process.wait(timeout=15) == 1  # Kubernetes restarts the container


def test_a_key_rotation_is_logged_once_per_pod(pod: Pod, secret_dir: KubeletSecretDir) -> None:
    """Breakage: workers logging `key_reloaded` too (one line per worker plus one)."""
    secret_dir.write(SECOND_KEY)
    pod.wait_for("key_reloaded", 5)
    httpx.get(pod.root + "/readyz", timeout=5)
    pod.stop()
    assert pod.process.stdout is not None
    pod.lines += [json.loads(raw) for raw in pod.process.stdout.read().splitlines()]
    assert [line["event"] for line in pod.lines].count("key_reloaded") == 1


def test_a_worker_still_alive_after_drain_and_grace_is_killed(
    proxy_env: dict[str, str],
) -> None:
    """Breakage: the SIGKILL after drain_timeout + STOP_GRACE in Supervisor._loop."""
    pod = Pod({**proxy_env, "LLM_PROXY_WORKERS": "2", "LLM_PROXY_DRAIN_TIMEOUT": "0.5"})
    frozen = min(pod.worker_pids)
    os.kill(frozen, signal.SIGSTOP)  # it cannot act on SIGTERM
    try:
        began = time.monotonic()
        pod.process.send_signal(signal.SIGTERM)
        assert pod.process.wait(timeout=0.5 + STOP_GRACE + 5) == 0
        assert time.monotonic() - began >= 0.5 + STOP_GRACE - 0.5  # it waited the grace
        deadline = time.monotonic() + 2
        while Path(f"/proc/{frozen}").exists() and _state(frozen) != "Z":
            assert time.monotonic() < deadline, "the frozen worker outlived the pod"
            time.sleep(0.02)
    finally:
        if Path(f"/proc/{frozen}").exists():
            os.kill(frozen, signal.SIGKILL)
        pod.stop()


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "gone"


def test_the_key_is_not_in_a_workers_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, secret_dir: KubeletSecretDir
) -> None:
    """Breakage: the key put into os.environ before the fork. /proc/<pid>/environ shows
    only the environment at exec, so the forked child reports its own os.environ."""
    report = tmp_path / "environ.json"

    def report_environ(main: object) -> None:
        close = getattr(main, "close", None)
        if close is not None:
            close()  # the coroutine serve_worker made: never run
        report.write_text(json.dumps(dict(os.environ)))

    monkeypatch.setattr(server, "run_loop", report_environ)
    settings = Settings(host="127.0.0.1", port=0, key_file=secret_dir.key_file, workers=2)
    supervisor = Supervisor(settings, server.run_worker)
    supervisor.listener = _listen("127.0.0.1", 0)
    supervisor.keys.current = LiveKey.from_text(FAKE_KEY)
    try:
        supervisor._spawn()
        (pid,) = supervisor.workers
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
    finally:
        supervisor.listener.close()
        for worker in supervisor.workers.values():
            worker.sock.close()
        supervisor.selector.close()
    environ = json.loads(report.read_text())
    assert environ  # the child did report
    assert not [name for name, value in environ.items() if FAKE_KEY in value]
