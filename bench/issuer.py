"""A fake service-account issuer for the identity row: a signing key, a caller's token, JWKS.

`BenchIdentity.create(work)` makes an RSA key, writes the JWKS the issuer serves, the
proxy's own token (sent when it fetches the JWKS) and one caller's token, all under
`work`: tokens travel in files, never in argv. `python -m bench.issuer JWKS_FILE`
serves `/openid/v1/jwks` and `/.well-known/openid-configuration` on loopback, as the
API server does, and prints its port.
"""

import asyncio
import json
import sys
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from fakes.cluster_issuer import ISSUER, SigningKey, mint

KID = "bench-key"
NAMESPACE, SERVICE_ACCOUNT = "bench", "loadgen"
# The bench client's budget: a limit is checked and charged on every call, never reached.
CLIENT = {
    "name": "bench",
    "namespace": NAMESPACE,
    "serviceAccount": SERVICE_ACCOUNT,
    "requestsPerMinute": 1_000_000_000,
    "tokensPerMinute": 1_000_000_000,
}


@dataclass(frozen=True)
class BenchIdentity:
    """Files of one run: the JWKS served, the proxy's token, the caller's token."""

    jwks_file: Path
    own_token_file: Path
    caller_token_file: Path

    @classmethod
    def create(cls, work: Path) -> "BenchIdentity":
        key = SigningKey(KID)
        jwks_file = work / "jwks.json"
        jwks_file.write_text(json.dumps({"keys": [key.jwk()]}))
        caller = work / "caller-token"
        caller.write_text(mint(key, NAMESPACE, SERVICE_ACCOUNT, lifetime=6 * 3600))
        own = work / "proxy-own-token"
        own.write_text("bench-proxy-own-token")
        return cls(jwks_file, own, caller)

    def proxy_env(self, issuer_port: int) -> dict[str, str]:
        """What the proxy needs to require identity, with the bench client and its budget."""
        return {
            "LLM_PROXY_IDENTITY_MODE": "require",
            "LLM_PROXY_IDENTITY_JWKS_URL": f"http://127.0.0.1:{issuer_port}/openid/v1/jwks",
            "LLM_PROXY_IDENTITY_TOKEN_FILE": str(self.own_token_file),
            "LLM_PROXY_CLIENTS": json.dumps([CLIENT]),
        }


async def serve(jwks: bytes) -> None:
    async def handle(request: web.BaseRequest) -> web.Response:
        if request.path == "/openid/v1/jwks":
            return web.Response(body=jwks, content_type="application/json")
        if request.path == "/.well-known/openid-configuration":
            return web.json_response({"issuer": ISSUER, "jwks_uri": "unused"})
        return web.Response(status=404)

    runner = web.ServerRunner(web.Server(handle), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    print(runner.addresses[0][1], flush=True)
    await asyncio.Event().wait()


def main() -> None:
    asyncio.run(serve(Path(sys.argv[1]).read_bytes()))


if __name__ == "__main__":
    main()
