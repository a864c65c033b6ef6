"""Loopback ports for servers a test starts."""

import socket


def free_port() -> int:
    """A port nothing listens on right now (the kernel's pick; the caller binds it soon after)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
