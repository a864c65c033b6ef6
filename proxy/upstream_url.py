"""The upstream base URL: checked once at start, and shown without secrets.

Kept apart from the request path (yarl only) so settings can validate it
without importing the server.
"""

from yarl import URL


def check_upstream(value: str) -> URL:
    """The upstream base URL, or ValueError saying what is wrong (never echoing secrets)."""
    try:
        url = URL(value)
    except (ValueError, TypeError):
        raise ValueError("is not a valid URL; use e.g. https://api.openai.com/v1") from None
    if url.scheme not in ("http", "https"):
        raise ValueError("must be an http(s) URL such as https://api.openai.com/v1")
    if not url.raw_host:
        raise ValueError("has no host; use e.g. https://api.openai.com/v1")
    if url.raw_user is not None or url.raw_password is not None:
        raise ValueError("must not carry a user or password (the key comes from the key file)")
    if url.raw_query_string or "?" in value:
        raise ValueError("must not carry a query string")
    if url.raw_fragment or "#" in value:
        raise ValueError("must not carry a fragment")
    return url


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
