"""Which forward proxy, if any, the upstream is reached through.

Clusters often reach the internet only through an egress proxy named in
HTTPS_PROXY/HTTP_PROXY (with NO_PROXY exceptions). The answer is worked out once at
start-up from the environment, not per request: the upstream never changes while the
proxy runs, and reading the environment on every call would cost on the hot path.
"""

import urllib.request
from urllib.parse import urlsplit


def egress_proxy_for(upstream_url: str) -> str | None:
    """The proxy URL the standard *_PROXY variables name for `upstream_url`, or None."""
    parts = urlsplit(upstream_url)
    if parts.hostname is None or urllib.request.proxy_bypass(parts.hostname):
        return None
    return urllib.request.getproxies().get(parts.scheme)
