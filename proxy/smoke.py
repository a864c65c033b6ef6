"""`python -m proxy smoke`: one keyless chat completion through a gateway.

Prints the reply and the latency and returns 0, or prints one line saying why
it failed and returns 1. Used by the Pulumi stack's `smokeTest` output.
"""

import re
import time

import httpx

PROMPT = "Reply with the single word: pong"
_KEYLIKE = re.compile(r"sk-[A-Za-z0-9_*\-]{4,}")


def _scrub(text: str, limit: int = 200) -> str:
    """One line, bounded, with anything key-shaped masked (upstream 401s echo key tails)."""
    line = " ".join(text.split())
    return _KEYLIKE.sub("sk-***", line)[:limit]


def _error_reason(response: httpx.Response) -> str:
    try:
        error = response.json().get("error") or {}
        detail = f"{error.get('code') or error.get('type') or ''}: {error.get('message', '')}"
    except (ValueError, AttributeError):
        detail = response.text
    return f"HTTP {response.status_code} from {response.request.url.host}: {_scrub(detail)}"


def run_smoke(base_url: str, model: str, timeout: float) -> tuple[bool, str]:
    """(ok, one line to print). Sends no credentials: the gateway must add them."""
    url = base_url.rstrip("/") + "/chat/completions"
    body = {"model": model, "messages": [{"role": "user", "content": PROMPT}]}
    began = time.perf_counter()
    try:
        response = httpx.post(url, json=body, timeout=timeout)
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
