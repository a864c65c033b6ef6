"""pod_probe.py as the pods run it (`python -c SOURCE ...`), against loopback: a served call
reads as a status, a closed port as a bounded refusal, so the e2e refusal checks cannot pass
because the probe itself is broken."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tests.e2e.e2e_pods import PROBE_SOURCE


class _Ok(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self._reply()

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        self._reply()

    def _reply(self) -> None:
        body = json.dumps({"path": self.path, "method": self.command}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Ok)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def probe(*args: str) -> list[dict[str, Any]]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE_SOURCE, *args],
        capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    return [json.loads(line) for line in done.stdout.splitlines()]


def test_a_served_request_reports_its_status_and_body(server: str) -> None:
    (got,) = probe("http", f"http://{server}/readyz")
    assert got["status"] == 200
    assert json.loads(got["body"]) == {"path": "/readyz", "method": "GET"}
    (posted,) = probe("http", f"http://{server}/v1/chat/completions", "{}")
    assert json.loads(posted["body"])["method"] == "POST"


def test_a_closed_port_is_a_refusal_with_no_status(closed_port: int) -> None:
    (got,) = probe("http", f"http://127.0.0.1:{closed_port}/readyz")
    assert "status" not in got
    assert got["error"] == "ConnectionRefusedError"
    (connect,) = probe("tcp", "127.0.0.1", str(closed_port))
    assert connect["connected"] is False


def test_tcp_and_resolve_report_success(server: str) -> None:
    host, port = server.split(":")
    assert probe("tcp", host, port)[0]["connected"] is True
    assert "127.0.0.1" in probe("resolve", "localhost")[0]["addresses"]


def test_until_prints_started_then_stops_at_the_wanted_outcome(
    server: str, closed_port: int
) -> None:
    started, result = probe("until", "ok", f"http://{server}/readyz", "5")
    assert "started" in started
    assert result["reached"] is True
    assert result["attempts"] == 1
    _, refused = probe("until", "refused", f"http://127.0.0.1:{closed_port}/", "5")
    assert refused["reached"] is True
    _, never = probe("until", "ok", f"http://127.0.0.1:{closed_port}/", "0.5")
    assert never["reached"] is False
    assert never["attempts"] >= 2
