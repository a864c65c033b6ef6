"""Junk paths and header names neither pin memory nor keep real ones out."""

from collections.abc import Iterator

import pytest
from yarl import URL

from proxy import headers, routes
from proxy.bounded_cache import MAX_KEY_CHARS
from proxy.target import UpstreamTarget


@pytest.fixture(autouse=True)
def empty_caches() -> Iterator[None]:
    caches = (routes._known, headers._passes_upstream, headers._passes_back)
    for cache in caches:
        cache.clear()
    yield
    for cache in caches:
        cache.clear()  # no junk left for other tests


def test_long_junk_paths_are_not_kept_and_real_paths_still_are() -> None:
    for i in range(3000):
        routes.classify("GET", f"/v1/{i:05d}" + "x" * 4000)
    assert routes._known == {}  # was 1,024 entries of ~4 KB, kept forever
    routes.classify("POST", "/v1/chat/completions")
    assert ("POST", "/v1/chat/completions") in routes._known


def test_a_full_cache_makes_room_for_new_entries() -> None:
    for i in range(3000):
        routes.classify("GET", f"/v1/responses/resp_{i}")
    assert len(routes._known) <= routes._MAX_CACHED
    routes.classify("POST", "/v1/chat/completions")
    assert ("POST", "/v1/chat/completions") in routes._known  # was: never cached


def test_long_header_names_and_upstream_urls_are_not_kept() -> None:
    long_name = "X-" + "j" * MAX_KEY_CHARS
    assert headers._request_header_passes(long_name)
    assert headers._response_header_passes(long_name)
    assert long_name not in headers._passes_upstream
    assert long_name not in headers._passes_back
    target = UpstreamTarget(URL("http://upstream.example/v1"))
    target.checked_url(URL("/v1/models/" + "m" * MAX_KEY_CHARS))
    target.checked_url(URL("/v1/models"))
    assert list(target._built) == [("/v1/models", "")]
