"""`python -m proxy smoke --expect-key`: the smoke Job's proof that the stack's key is live."""

import threading
import time

import pytest

from fakes.kubelet_secret_dir import KubeletSecretDir
from proxy.cli import main
from proxy.fingerprint import key_fingerprint
from tests.support.proxy import FAKE_KEY, SECOND_KEY, ProxyHandle, Upstream


def _smoke(url: str, expect: str, wait: float) -> list[str]:
    return ["smoke", "--url", url, "--expect-key", expect, "--key-wait", str(wait)]


def test_the_chat_goes_out_once_the_proxy_serves_the_expected_key(
    proxy: ProxyHandle, upstream: Upstream, capsys: pytest.CaptureFixture[str]
) -> None:
    expected = key_fingerprint(FAKE_KEY)
    assert main(_smoke(proxy.base_url, expected, 5)) == 0
    (line,) = capsys.readouterr().out.splitlines()
    assert line.startswith("ok: gpt-4o-mini replied 'pong' in ")
    assert line.endswith(f"(a proxy serving key {expected})")
    assert upstream.fake.seen.authorizations == [f"Bearer {FAKE_KEY}"]


def test_a_proxy_on_another_key_fails_after_the_wait_and_sends_no_chat(
    proxy: ProxyHandle, upstream: Upstream, capsys: pytest.CaptureFixture[str]
) -> None:
    expected, served = key_fingerprint(SECOND_KEY), key_fingerprint(FAKE_KEY)
    began = time.monotonic()
    assert main(_smoke(proxy.base_url, expected, 0.5)) == 1
    assert time.monotonic() - began < 5
    (line,) = capsys.readouterr().out.splitlines()
    assert line == (
        f"smoke failed: after 0.5 s the proxy at {proxy.base_url} still serves key {served}, "
        f"not {expected} (the kubelet refreshes Secret volumes about once a minute)"
    )
    assert upstream.fake.seen.paths == []
    assert FAKE_KEY not in line
    assert SECOND_KEY not in line


def test_it_waits_through_a_rotation_and_the_new_key_carries_the_chat(
    proxy: ProxyHandle,
    upstream: Upstream,
    secret_dir: KubeletSecretDir,
    capsys: pytest.CaptureFixture[str],
) -> None:
    rotate = threading.Timer(1.0, secret_dir.write, args=(SECOND_KEY,))
    rotate.start()
    try:
        assert main(_smoke(proxy.base_url, key_fingerprint(SECOND_KEY), 20)) == 0
    finally:
        rotate.join()
    assert "ok: gpt-4o-mini replied 'pong'" in capsys.readouterr().out
    assert upstream.fake.seen.authorizations == [f"Bearer {SECOND_KEY}"]


def test_no_proxy_answering_says_none_reported_a_key(capsys: pytest.CaptureFixture[str]) -> None:
    url = "http://127.0.0.1:9/v1"
    assert main(_smoke(url, "0123456789ab", 0)) == 1
    (line,) = capsys.readouterr().out.splitlines()
    assert line == (
        f"smoke failed: after 0 s no proxy at {url} reported its key on /readyz (not ready, "
        "or not the bundled proxy); expected 0123456789ab"
    )
