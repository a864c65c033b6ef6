"""The objects under test: every stack file, plus variants that reach every shape branch."""

import json
from functools import cache
from typing import Any

from tests.support.identity_config import identity_on
from tests.support.pulumi_render import STACKS, render_stack, without

DIGEST = "sha256:" + "0" * 64

# name → (stack, overrides)
VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    **{stack: (stack, {}) for stack in STACKS},
    "skip-await": ("dev", {"skipAwait": True}),
    "kill-switch": ("prod", {"killSwitch": True}),
    "digest-pinned": ("prod", {"proxy.imageDigest": DIGEST}),
    "groq-upstream": ("staging", {"openaiBaseUrl": "https://api.groq.com/openai/v1"}),
    "in-cluster-upstream": (
        "dev",
        {"openaiBaseUrl": "http://vllm.models.svc.cluster.local:8000/v1", **without("model")},
    ),
    "port-and-prefix": ("dev", {"gateway.port": 8080, "gateway.pathPrefix": "/llm/openai"}),
    "clients-and-egress-proxy": (
        "staging",
        {
            "allowedClients": [
                {"namespaceLabels": {}},
                {"namespaceLabels": {"team": "ai"}, "podLabels": {"app": "chat"}},
            ],
            "metricsScraper": {"namespaceLabels": {"kubernetes.io/metadata.name": "obs"}},
            "proxy.egressProxy": "http://egress.internal:3128",
        },
    ),
    "no-clients": ("dev", {"allowedClients": []}),
    "identity-require": ("dev", identity_on("require", **{"smokeTest.onUp": True})),
    "identity-attribute": ("prod", identity_on("attribute")),
    "monitoring": (
        "prod",
        {
            "monitoring.enabled": True,
            "monitoring.labels": {"release": "kube-prometheus-stack"},
            "monitoring.scrapeInterval": "15s",
        },
    ),
    "monitoring-kill-switch-proxy-only": (
        "dev",
        {"monitoring.enabled": True, "killSwitch": True, "agentgateway.enabled": False},
    ),
}


@cache
def objects() -> list[tuple[str, dict[str, Any]]]:
    """(variant, object) for every distinct object any variant renders."""
    seen: set[str] = set()
    found = []
    for variant, (stack, overrides) in VARIANTS.items():
        for manifest in render_stack(stack, overrides=overrides).manifests():
            fingerprint = json.dumps(manifest, sort_keys=True)
            if fingerprint not in seen:
                seen.add(fingerprint)
                found.append((variant, manifest))
    return found


def object_id(variant: str, manifest: dict[str, Any]) -> str:
    return f"{variant}:{manifest['kind']}/{manifest['metadata']['name']}"
