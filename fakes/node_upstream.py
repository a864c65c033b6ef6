"""The fake OpenAI API that pods on the local node call (scripts/e2e/cluster.sh starts it).

It answers like fakes/openai_upstream.py and appends one JSON line per request to a
record file: when, from which address, which path, and the fingerprint of the key that
arrived (never the key itself). Tests read that file to prove which key reached the
upstream and from which pod. With `--accept FILE`, only keys whose fingerprints are listed
in FILE (one per line, re-read on each request) are accepted; others get OpenAI's 401.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path

from aiohttp import web

from fakes.openai_upstream import FakeUpstream
from proxy.fingerprint import key_fingerprint

INVALID_KEY = {
    "error": {
        "message": "Incorrect API key provided.",
        "type": "invalid_request_error",
        "code": "invalid_api_key",
    }
}


def bearer_fingerprint(authorization: str | None) -> str | None:
    """Fingerprint of the bearer token, the same recipe as the proxy's /readyz."""
    if not authorization or not authorization.startswith("Bearer "):
        return None
    return key_fingerprint(authorization.removeprefix("Bearer "))


class RecordingUpstream:
    """FakeUpstream plus a record file and an optional list of accepted keys."""

    def __init__(self, record: Path, accept: Path | None) -> None:
        self.fake = FakeUpstream()
        self.record = record.open("a", buffering=1)  # one line per request, flushed
        self.accept = accept

    def _accepted(self, fingerprint: str | None) -> bool:
        if self.accept is None or not self.accept.exists():
            return True
        return fingerprint in self.accept.read_text().split()

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        if request.path == "/healthz":
            return web.json_response({"status": "ok"})
        fingerprint = bearer_fingerprint(request.headers.get("Authorization"))
        accepted = self._accepted(fingerprint)
        line = {
            "time": time.time(),
            "client": request.remote,
            "path": request.path,
            "keyFingerprint": fingerprint,
            "accepted": accepted,
        }
        self.record.write(json.dumps(line) + "\n")
        if not accepted:
            await request.read()
            return web.json_response(INVALID_KEY, status=401)
        return await self.fake.handle(request)


async def serve(host: str, port: int, record: Path, accept: Path | None) -> None:
    upstream = RecordingUpstream(record, accept)
    server = web.Server(upstream.handle, handler_cancellation=True)
    runner = web.ServerRunner(server, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port, backlog=1024).start()
    print(f"node upstream on http://{host}:{port}/v1, recording to {record}", flush=True)
    await asyncio.Event().wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--record", type=Path, required=True)
    parser.add_argument("--accept", type=Path, default=None)
    args = parser.parse_args()
    asyncio.run(serve(args.host, args.port, args.record, args.accept))


if __name__ == "__main__":
    main()
