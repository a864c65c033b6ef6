"""What caller identity adds to the pods: the proxy's env and API-server token, the smoke
pods' own ServiceAccount token, and the client table the proxy enforces.

Apps send a projected ServiceAccount token (audience `identity.audience`) as their API
key. The proxy verifies it against the cluster's JWKS, which it fetches from the API
server with a token of its own (a projected volume: the proxy's ServiceAccount keeps
automountServiceAccountToken false). The smoke pods run as the ServiceAccount
`llm-smoke`, which the proxy always knows as the client `llm-smoke` (no budget).
"""

import json
from dataclasses import dataclass

import pulumi_kubernetes as k8s

from .config_model import AppConfig, LlmGatewayConfig

SMOKE_ACCOUNT = "llm-smoke"  # also the smoke pods' client name (reserved in the config)
CALLER_TOKEN_VOLUME = "llm-gateway-token"  # noqa: S105 - a name, not a secret
CALLER_TOKEN_DIR = "/var/run/secrets/llm-gateway/token"  # noqa: S105 - a name, not a secret
CALLER_TOKEN_FILE = f"{CALLER_TOKEN_DIR}/token"
API_TOKEN_VOLUME = "apiserver-token"  # noqa: S105 - a name, not a secret
API_TOKEN_DIR = "/var/run/secrets/llm-gateway/apiserver"  # noqa: S105 - a name, not a secret
TOKEN_SECONDS = 3600  # the kubelet refreshes a projected token at 80% of its life


@dataclass(frozen=True)
class ProxyIdentity:
    """What the proxy Deployment carries when identity is on."""

    mode: str
    audience: str
    issuer: str | None
    clients: tuple[AppConfig, ...]
    namespace: str  # the smoke client's
    shares: int  # replicas sharing each budget

    def clients_json(self) -> str:
        listed = [c.model_dump(by_alias=True, exclude_none=True) for c in self.clients]
        smoke = {
            "name": SMOKE_ACCOUNT,
            "namespace": self.namespace,
            "serviceAccount": SMOKE_ACCOUNT,
        }
        return json.dumps([*listed, smoke], separators=(",", ":"), sort_keys=True)

    def env(self) -> dict[str, str]:
        values = {
            "LLM_PROXY_IDENTITY_MODE": self.mode,
            "LLM_PROXY_IDENTITY_AUDIENCE": self.audience,
            "LLM_PROXY_IDENTITY_TOKEN_FILE": f"{API_TOKEN_DIR}/token",
            "LLM_PROXY_IDENTITY_CA_FILE": f"{API_TOKEN_DIR}/ca.crt",
            "LLM_PROXY_IDENTITY_SHARES": str(self.shares),
            "LLM_PROXY_CLIENTS": self.clients_json(),
        }
        if self.issuer is not None:
            values["LLM_PROXY_IDENTITY_ISSUER"] = self.issuer
        return values

    def volumes(self) -> list[k8s.core.v1.VolumeArgsDict]:
        """The proxy's own API-server token and the cluster CA, to fetch the JWKS."""
        return [
            {
                "name": API_TOKEN_VOLUME,
                "projected": {
                    "default_mode": 0o440,
                    "sources": [
                        {
                            "service_account_token": {
                                "path": "token",
                                "expiration_seconds": TOKEN_SECONDS,
                            }
                        },
                        {
                            "config_map": {
                                "name": "kube-root-ca.crt",
                                "items": [{"key": "ca.crt", "path": "ca.crt"}],
                            }
                        },
                    ],
                },
            }
        ]

    def mounts(self) -> list[k8s.core.v1.VolumeMountArgsDict]:
        return [{"name": API_TOKEN_VOLUME, "mount_path": API_TOKEN_DIR, "read_only": True}]


def proxy_identity(cfg: LlmGatewayConfig) -> ProxyIdentity | None:
    if cfg.identity.mode == "off":
        return None
    return ProxyIdentity(
        mode=cfg.identity.mode,
        audience=cfg.identity.audience,
        issuer=cfg.identity.issuer,
        clients=tuple(cfg.clients),
        namespace=cfg.namespace,
        shares=max(1, cfg.proxy.replicas),
    )


def caller_token_volume(audience: str) -> k8s.core.v1.VolumeArgsDict:
    """A projected ServiceAccount token for calling the gateway (apps and smoke pods)."""
    return {
        "name": CALLER_TOKEN_VOLUME,
        "projected": {
            "sources": [
                {
                    "service_account_token": {
                        "audience": audience,
                        "path": "token",
                        "expiration_seconds": TOKEN_SECONDS,
                    }
                }
            ]
        },
    }


def caller_token_mount() -> k8s.core.v1.VolumeMountArgsDict:
    return {"name": CALLER_TOKEN_VOLUME, "mount_path": CALLER_TOKEN_DIR, "read_only": True}
