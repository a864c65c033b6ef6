"""What caller identity adds to the pods: the proxy's env, the smoke pods' own
ServiceAccount token, and the client table the proxy enforces.

Apps send a projected ServiceAccount token (audience `identity.audience`) as their API
key. The proxy verifies it against the cluster's JWKS, which it fetches from the API
server with its own token: the pod's API credentials mount, shared with the key
Secret's watch (components/shapes/deployment.py). The smoke pods run as the
ServiceAccount `llm-smoke`, which the proxy always knows as the client `llm-smoke` (no
budget).
"""

from dataclasses import dataclass
from typing import Any

import pulumi_kubernetes as k8s

from proxy import contract

from .config_model import AppConfig, LlmGatewayConfig

SMOKE_ACCOUNT = "llm-smoke"  # also the smoke pods' client name (reserved in the config)
CALLER_TOKEN_VOLUME = "llm-gateway-token"  # noqa: S105 - a name, not a secret
CALLER_TOKEN_DIR = "/var/run/secrets/llm-gateway/token"  # noqa: S105 - a name, not a secret
CALLER_TOKEN_FILE = f"{CALLER_TOKEN_DIR}/token"
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

    def client_table(self) -> list[dict[str, Any]]:
        """The listed apps and the smoke pods' own client, as the proxy reads them."""
        listed = [c.model_dump(by_alias=True, exclude_none=True) for c in self.clients]
        smoke = {
            "name": SMOKE_ACCOUNT,
            "namespace": self.namespace,
            "serviceAccount": SMOKE_ACCOUNT,
        }
        return [*listed, smoke]

    def env(self) -> dict[str, str]:
        """The proxy's identity settings; it reads its own token and the cluster CA from
        the pod's API credentials mount (its defaults)."""
        return contract.proxy_env(
            identity_mode=self.mode,
            identity_audience=self.audience,
            identity_shares=self.shares,
            clients=self.client_table(),
            identity_issuer=self.issuer,
        )


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
