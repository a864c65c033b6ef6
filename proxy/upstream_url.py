"""The upstream base URL: checked once at start, and shown without secrets.

Kept apart from the request path (yarl only) so settings can validate it
without importing the server.
"""

from yarl import URL

from proxy.contract import DEFAULT_UPSTREAM, check_upstream_url


def check_upstream(value: str) -> URL:
    """The upstream base URL (contract.check_upstream_url's rule), or ValueError saying
    what is wrong (never echoing secrets)."""
    check_upstream_url(value)
    try:
        return URL(value)
    except (ValueError, TypeError):
        raise ValueError(f"is not a valid URL; use e.g. {DEFAULT_UPSTREAM}") from None


def display_upstream(value: str) -> str:
    """The upstream as it is safe to log: scheme, host, port and path only."""
    try:
        url = URL(value)
        return str(
            URL.build(
                scheme=url.scheme,
                host=url.raw_host or "",
                port=url.explicit_port,
                path=url.raw_path,
                encoded=True,
            )
        )
    except (ValueError, TypeError):
        return "<invalid upstream URL>"
