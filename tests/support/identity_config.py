"""Stack overrides that turn caller identity on, shared by the unit and manifest tests."""

import json
from typing import Any

ISSUER = "https://kubernetes.default.svc.cluster.local"
# A public RSA key in JWK form (made for these tests; no private half exists anywhere).
JWKS = json.dumps(
    {
        "keys": [
            {
                "use": "sig",
                "kty": "RSA",
                "kid": "test-cluster-key",
                "alg": "RS256",
                "n": "u1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gunVTLw7onLRnrq0_IzW7yWR7QkrmBL"
                "7jTKEn5u-qKhbwKfBstIs-bMY2Zkp18gnTxKLxoS2tFczGkPLPgizskuemMghRniWaoLcyehkd3qqGEl"
                "vW_VDL5AaWTg0nLVkjRo9z-40RQzuVaE8AkAFmxZzow3x-VJYKdjykkJ0iT9wCS0DRTXu269V264Vf_3"
                "jvredZiKRkgwlL9xNAwxXFg0x_XFw005UWVRIkdgcKWTjpBP2dPwVZ4WWC-9aGVd-Gyn1o0CLelf4rEj"
                "GoXbAAEgAqeGUxrcIlbjXfbcmw",
                "e": "AQAB",
            }
        ]
    },
    separators=(",", ":"),
)
APPS: list[dict[str, Any]] = [
    {
        "name": "chat",
        "namespace": "team-ai",
        "serviceAccount": "chat",
        "requestsPerMinute": 600,
        "tokensPerMinute": 200000,
        "tokensPerDay": 5000000,
    },
    {"name": "notebooks", "namespace": "research", "serviceAccount": "jupyter"},
]


def identity_on(mode: str = "require", **extra: Any) -> dict[str, Any]:
    return {
        "identity.mode": mode,
        "identity.issuer": ISSUER,
        "identity.jwks": JWKS,
        "clients": APPS,
        **extra,
    }
