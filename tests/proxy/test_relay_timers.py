"""A relayed stream frees its connection's idle timers, and both come back after it.

While a stream is relayed the connection holds no head timer and no keep-alive timer
(memory per held stream); once the stream ends, an idle keep-alive connection must
still close after the idle timeout, and a slow next head after the header timeout.
"""

import json
import socket
import time
from collections.abc import Callable

from tests.support.net import seconds_until_closed
from tests.support.proxy import ProxyHandle

BODY = json.dumps({"model": "gpt-4o-mini", "messages": [], "stream": True}).encode()


def stream_on(sock: socket.socket) -> bytes:
    """One paced stream (relayed from the socket callback) on a kept-alive connection."""
    sock.sendall(
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"x-fake-behaviour: chunks:5,chunk-delay:0.05\r\n"
        b"Content-Length: %d\r\n\r\n%b" % (len(BODY), BODY)
    )
    received = b""
    sock.settimeout(5)
    while not received.endswith(b"0\r\n\r\n"):
        data = sock.recv(65536)
        assert data, "closed mid-stream"
        received += data
    return received


def test_an_idle_connection_still_closes_after_a_relayed_stream(
    start_proxy: Callable[..., ProxyHandle],
) -> None:
    proxy = start_proxy(idle_timeout=0.5, header_timeout=30)
    with socket.create_connection(("127.0.0.1", proxy.running.port), timeout=5) as sock:
        assert b"data: [DONE]" in stream_on(sock)
        assert b"data: [DONE]" in stream_on(sock)  # kept alive between streams
        held = seconds_until_closed(sock, 5)
    assert 0.3 < held < 2


def test_a_slow_head_after_a_relayed_stream_is_still_cut_off(
    start_proxy: Callable[..., ProxyHandle],
) -> None:
    proxy = start_proxy(header_timeout=0.5, idle_timeout=30)
    with socket.create_connection(("127.0.0.1", proxy.running.port), timeout=5) as sock:
        assert b"data: [DONE]" in stream_on(sock)
        time.sleep(0.7)  # longer than the header timeout, idle between requests: fine
        sock.sendall(b"GET /healthz HTTP/1.1\r\n")  # a head that never ends
        held = seconds_until_closed(sock, 5)
    assert 0.3 < held < 2.5
