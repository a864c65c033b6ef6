"""Loopback ports for servers a test starts."""

import socket
import time


def free_port() -> int:
    """A port nothing listens on right now (the kernel's pick; the caller binds it soon after)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def seconds_until_closed(sock: socket.socket, limit: float) -> float:
    """How long until the peer closes (what it sends is read and dropped), at most `limit`."""
    began = time.monotonic()
    sock.settimeout(0.05)
    while time.monotonic() - began < limit:
        try:
            if not sock.recv(65536):
                break
        except TimeoutError:
            continue
        except ConnectionError:
            break
    return time.monotonic() - began
