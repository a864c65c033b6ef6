"""The rule the per-path and per-header caches share: short keys only, and room for new ones.

Real traffic repeats a few paths and a few dozen header names, so a small dict saves
per-call work. A hostile client sends endless long junk instead: keys longer than
MAX_KEY_CHARS are never stored (a few KB each would pin megabytes), and a full
cache is emptied rather than frozen, so junk cannot keep the real entries out.
"""

from typing import TypeVar

K = TypeVar("K")
V = TypeVar("V")

MAX_KEY_CHARS = 256


def remember(cache: dict[K, V], key: K, value: V, key_chars: int, limit: int) -> None:
    """Store `value` unless its key is long; empty the cache first when it is full."""
    if key_chars > MAX_KEY_CHARS:
        return
    if len(cache) >= limit:
        cache.clear()
    cache[key] = value
