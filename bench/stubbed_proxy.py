"""The proxy with its per-call features stubbed out: the "proxy (features off)" row.

`python bench/stubbed_proxy.py` (PYTHONPATH = the proxy's tree, LLM_PROXY_* as for
`python -m proxy serve`) runs the proxy unchanged except that, in this process only,
the four features the issue prices are replaced with no-ops: the JSON access-log
line, the Prometheus series, the usage (token) scan, and the model scan of the body
(every body, small or large, reads as naming `gpt-4o-mini`, the model the load generator sends, so
the allowlist check still runs and passes). Server, limits, timeouts, headers, key
and streaming stay as they are.

Not a mode of the proxy and never deployed: it exists so that "full minus features
off" says, in one run, what those features cost per request.
"""

import sys

from proxy import forward, observability, usage
from proxy.cli import main
from proxy.json_scan import scan_json
from proxy.model_check import BodyModels

_BENCH_MODEL = BodyModels(scan_json(b'{"model":"gpt-4o-mini"}').models)


async def _bench_model_off_loop(
    content_type: str, content_type_header: str, body: bytes | bytearray, tools: bool = False
) -> BodyModels:
    return _BENCH_MODEL


def stub_features() -> None:
    observability.EventLog.call = lambda self, call, duration: None  # type: ignore[method-assign]
    observability.Metrics.record = lambda self, call, duration: None  # type: ignore[method-assign]
    usage.UsageTail.feed = lambda self, chunk: None  # type: ignore[method-assign]
    usage.UsageTail.tokens = lambda self: (None, None)  # type: ignore[method-assign]
    forward.read_models = lambda *args: _BENCH_MODEL  # type: ignore[attr-defined]
    forward.read_models_off_loop = _bench_model_off_loop  # type: ignore[attr-defined]


if __name__ == "__main__":
    stub_features()
    sys.exit(main(["serve"]))
