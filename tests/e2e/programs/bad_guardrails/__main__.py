"""A deliberately bad program for the policy pack: a hand-written key Secret on a provider
without enableSecretMutable (a rotation would replace it) and a LoadBalancer Service in
front of the proxy pods. `pulumi preview --policy-pack policy/` must refuse it."""

import pulumi
import pulumi_kubernetes as k8s

labels = {"app.kubernetes.io/part-of": "llm-gateway"}
config = pulumi.Config()
plain = k8s.Provider("plain", kubeconfig=config.require("kubeconfig"))  # no enable_secret_mutable
opts = pulumi.ResourceOptions(provider=plain)
k8s.core.v1.Secret(
    "key",
    metadata={"name": "openai-api-key", "namespace": "default", "labels": labels},
    string_data={"apiKey": config.require_secret("openaiKey")},
    opts=opts,
)
k8s.core.v1.Service(
    "exposed",
    metadata={"name": "llm-proxy-public", "namespace": "default"},
    spec={
        "type": "LoadBalancer",
        "selector": {"app.kubernetes.io/name": "llm-proxy"},
        "ports": [{"port": 80, "target_port": 8080}],
    },
    opts=opts,
)
