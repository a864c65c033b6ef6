"""Where a /v1 call goes upstream, built from URL parts rather than joined strings.

The upstream base URL is checked and split once at start. Per call, the client's
path is accepted only when the path the proxy routes on (decoded) and the one it
forwards (encoded) name the same resource: no dot segments, no encoded `/` or `\\`
that an upstream could decode into new segments. The forwarded URL then keeps the
upstream's scheme, host and port whatever the client's path holds.
"""

import re

from yarl import URL

from proxy import errors
from proxy.bounded_cache import remember
from proxy.upstream_url import check_upstream as check_upstream

# Methods the OpenAI API uses. Anything else (TRACE, CONNECT, OPTIONS, PUT, PATCH...)
# is refused rather than sent upstream with the key.
ALLOWED_METHODS = frozenset({"GET", "HEAD", "POST", "DELETE"})
_ENCODED_SEPARATOR = re.compile(r"%(?:2[fF]|5[cC])")


# Upstream URLs already checked and built, per client URL. Most calls repeat a few
# paths; paths with ids are endless: see proxy.bounded_cache for how it stays small.
_MAX_CACHED = 1024


class UpstreamTarget:
    """Builds the upstream URL of each call from the base URL's fixed parts."""

    __slots__ = ("_built", "_host", "_port", "_prefix", "_scheme")

    def __init__(self, base: URL) -> None:
        self._scheme = base.scheme
        self._host = base.raw_host or ""
        self._port = base.explicit_port
        self._prefix = base.raw_path.rstrip("/")  # e.g. "/v1", or "" for a bare host
        self._built: dict[tuple[str, str], URL] = {}

    def checked_url(self, rel_url: URL) -> URL:
        """`check_path`, then `url_for`; remembered per (raw path, raw query)."""
        key = (rel_url.raw_path, rel_url.raw_query_string)
        url = self._built.get(key)
        if url is None:
            check_path(rel_url.path, rel_url.raw_path)
            url = self.url_for(rel_url)
            remember(self._built, key, url, len(key[0]) + len(key[1]), _MAX_CACHED)
        return url

    def url_for(self, rel_url: URL) -> URL:
        """The upstream URL for a client URL whose decoded path starts with /v1/."""
        raw_path = rel_url.raw_path
        if not raw_path.startswith("/v1/"):
            raise errors.bad_path("the /v1 prefix must be written plainly")
        return URL.build(
            scheme=self._scheme,
            host=self._host,
            port=self._port,
            path=self._prefix + raw_path[3:],
            query_string=rel_url.raw_query_string,
            encoded=True,
        )


def check_path(path: str, raw_path: str) -> None:
    """Refuse paths an upstream could resolve to something else than the proxy checked."""
    if "%" in raw_path and _ENCODED_SEPARATOR.search(raw_path):
        raise errors.bad_path("encoded '/' or '\\' in the path")
    if "\\" in path:
        raise errors.bad_path("'\\' in the path")
    if "/." in path or path.startswith("."):  # a dot segment needs one of these
        for segment in path.split("/"):
            if segment in (".", ".."):
                raise errors.bad_path("'.' or '..' path segments")
