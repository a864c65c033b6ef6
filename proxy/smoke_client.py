"""`python -m proxy smoke`: one keyless chat completion through a gateway.

Prints the reply and the latency and returns 0, or prints one line saying why
it failed and returns 1. Used by the Pulumi stack's `smokeTest` output and by the
smoke Jobs of `smokeTest.onUp`.

With an expected key fingerprint (the bundled proxy only), it first waits, bounded,
until the proxy answering it serves that key: it asks /readyz and sends the chat on
the same keep-alive connection, so the pod that proved the key is the pod that
answers. Right after a rotation that wait is the kubelet's Secret sync (~1 min).

Whatever answers is not trusted: replies are read up to MAX_REPLY_BYTES, the whole
run has one deadline (key wait + timeout), and what is printed of a reply is one
bounded line with control characters escaped (no terminal escape sequences).
"""

import re
import threading
import time
from pathlib import Path

import httpx

from proxy.contract import READY_PATH

PROMPT = "Reply with the single word: pong"
_KEYLIKE = re.compile(r"sk-[A-Za-z0-9_*\-]{4,}")
KEY_RETRY_SECONDS = 2.0
MAX_REPLY_BYTES = 1024 * 1024  # a chat reply or /readyz is far smaller


class _ReplyTooLarge(Exception):
    pass


def _scrub(text: str, limit: int = 200) -> str:
    """One line, bounded, with anything key-shaped masked (upstream 401s echo key tails)
    and every control character escaped."""
    line = " ".join(text.split())
    line = "".join(c if c.isprintable() else repr(c)[1:-1] for c in line[: limit * 2])
    return _KEYLIKE.sub("sk-***", line)[:limit]


def _send(
    client: httpx.Client, method: str, url: str | httpx.URL, **kwargs: object
) -> httpx.Response:
    """One request whose reply is read up to MAX_REPLY_BYTES (else _ReplyTooLarge)."""
    with client.stream(method, url, **kwargs) as response:  # type: ignore[arg-type]
        body = bytearray()
        for chunk in response.iter_bytes():
            body += chunk
            if len(body) > MAX_REPLY_BYTES:
                raise _ReplyTooLarge
    return httpx.Response(
        response.status_code,
        headers=response.headers,
        content=bytes(body),
        request=response.request,
    )


def _error_reason(response: httpx.Response) -> str:
    try:
        error = response.json().get("error") or {}
        detail = f"{error.get('code') or error.get('type') or ''}: {error.get('message', '')}"
    except (ValueError, AttributeError):
        detail = response.text
    return f"HTTP {response.status_code} from {response.request.url.host}: {_scrub(detail)}"


def run_smoke(
    base_url: str,
    model: str,
    timeout: float,
    *,
    expect_key: str | None = None,
    key_wait: float = 0.0,
    token_file: str | None = None,
) -> tuple[bool, str]:
    """(ok, one line to print). Sends no provider key: the gateway adds it. With
    `token_file` (identity on) it sends the pod's projected ServiceAccount token, as an
    app does; the token is never printed.

    Runs on a daemon thread so that one deadline (key_wait + timeout) bounds the whole
    run, however slowly an answer trickles in.
    """
    headers: dict[str, str] = {}
    if token_file is not None:
        try:
            headers["Authorization"] = "Bearer " + Path(token_file).read_text().strip()
        except OSError as exc:
            return False, f"smoke failed: cannot read the token file {token_file} ({exc.strerror})"
    overall = timeout + (key_wait if expect_key is not None else 0.0)
    result: list[tuple[bool, str]] = []

    def attempt() -> None:
        if expect_key is not None:
            result.append(_chat_on_key(base_url, model, timeout, expect_key, key_wait, headers))
        else:
            with httpx.Client(timeout=timeout, headers=headers) as client:
                result.append(_chat(client, base_url, model, timeout))

    worker = threading.Thread(target=attempt, name="smoke", daemon=True)
    worker.start()
    worker.join(overall + 1.0)
    if not result:
        return False, f"smoke failed: no complete answer from {base_url} within {overall:g} s"
    return result[0]


def _served_key(client: httpx.Client, base_url: str) -> str | None:
    """The fingerprint the proxy behind this connection serves (None: not ready/unknown)."""
    readyz = httpx.URL(base_url).copy_with(path=READY_PATH)
    try:
        answer = _send(client, "GET", readyz)
        served = answer.json().get("keyFingerprint") if answer.status_code == 200 else None
    except (httpx.HTTPError, ValueError, AttributeError, _ReplyTooLarge):
        return None
    return served if isinstance(served, str) else None


def _chat_on_key(
    base_url: str,
    model: str,
    timeout: float,
    expect_key: str,
    key_wait: float,
    headers: dict[str, str],
) -> tuple[bool, str]:
    """The chat, sent once a proxy serving `expect_key` answers (bounded by `key_wait`)."""
    deadline = time.monotonic() + key_wait
    served: str | None = None
    while True:
        # A new connection per try: the Service may pick another pod.
        with httpx.Client(timeout=timeout, headers=headers) as client:
            served = _served_key(client, base_url)
            if served == expect_key:
                ok, line = _chat(client, base_url, model, timeout)
                return ok, f"{line} (a proxy serving key {expect_key})" if ok else line
        if time.monotonic() >= deadline:
            break
        time.sleep(KEY_RETRY_SECONDS)
    if served is None:
        return False, (
            f"smoke failed: after {key_wait:g} s no proxy at {base_url} reported its key on "
            f"/readyz (not ready, or not the bundled proxy); expected {expect_key}"
        )
    return False, (
        f"smoke failed: after {key_wait:g} s the proxy at {base_url} still serves key {served}, "
        f"not {expect_key} (the kubelet refreshes Secret volumes about once a minute)"
    )


def _chat(client: httpx.Client, base_url: str, model: str, timeout: float) -> tuple[bool, str]:
    url = base_url.rstrip("/") + "/chat/completions"
    body = {"model": model, "messages": [{"role": "user", "content": PROMPT}]}
    began = time.perf_counter()
    try:
        response = _send(client, "POST", url, json=body)
    except _ReplyTooLarge:
        return False, f"smoke failed: the reply from {url} is over {MAX_REPLY_BYTES} bytes"
    except httpx.ConnectError as exc:
        return False, f"smoke failed: cannot connect to {url}: {_scrub(str(exc)) or 'refused'}"
    except httpx.TimeoutException:
        return False, f"smoke failed: no answer from {url} within {timeout:g} s"
    except httpx.HTTPError as exc:
        return False, f"smoke failed: {type(exc).__name__} talking to {url}: {_scrub(str(exc))}"
    elapsed_ms = (time.perf_counter() - began) * 1000
    if response.status_code != 200:
        return False, f"smoke failed: {_error_reason(response)}"
    try:
        reply = response.json()["choices"][0]["message"]["content"] or ""
    except (ValueError, KeyError, IndexError, TypeError):
        return False, f"smoke failed: 200 but not a chat completion: {_scrub(response.text)}"
    return True, f"ok: {model} replied {_scrub(reply)!r} in {elapsed_ms:.0f} ms via {url}"
