"""The proxy's collector settings: start-up objects frozen, young collections rarer."""

import subprocess
import sys

from tests.support.proxy import ROOT

PROBE = """
import gc
from proxy.gc_policy import YOUNG_THRESHOLD, settle_gc
before = gc.get_threshold()
settle_gc()
assert gc.get_freeze_count() > 1000, gc.get_freeze_count()  # the imports' objects
assert gc.get_threshold() == (YOUNG_THRESHOLD, before[1], before[2]), gc.get_threshold()
print("ok")
"""


def test_settle_gc_freezes_start_up_objects_and_raises_the_young_threshold() -> None:
    # In a fresh interpreter: the test process's own collector stays as it is.
    result = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.stdout.strip() == "ok", result.stderr
