"""The cyclic garbage collector's settings for a process that holds thousands of streams.

Reference counting frees nearly everything the proxy allocates; CPython's cyclic
collector is there for the rest (cycles: tasks and futures, exceptions and their
tracebacks). By default it runs a young collection every 700 net allocations of
container objects and, every 100 of those, a collection that walks the objects
that have lived a while: with a thousand streams held, every request's objects, and
the ~57,000 objects of the imports. With 1,000 streams held (`python -m
bench.gc_pauses`) that was ~165 ms of collections in a 7 s run, in pauses of up to
~60 ms that every stream's next chunk waited out.

So, once the proxy serves: `gc.freeze()` moves what exists then (modules, settings,
the app) to a permanent generation the collector never walks again, and young
collections run every YOUNG_THRESHOLD allocations instead of 700: cycles are still
collected, at most that many allocations later. The older generations keep their
default ratios. Higher thresholds cost no less in all but pause longer each time
(10,000: pauses up to ~20 ms; `python -m bench.gc_pauses`).
"""

import gc

YOUNG_THRESHOLD = 3_000


def settle_gc() -> None:
    """Call once the process serves (after the imports and the start-up objects)."""
    gc.freeze()  # (no collection first: it would hold up the first calls by ~50 ms)
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)
