"""A program that uses llm-gateway only through the component package, as another language's
generated SDK does: a remote component by token, camelCase inputs, no import of components/."""

from typing import Any

import pulumi

OUTPUTS = ("namespace", "secretName", "keyFingerprint", "proxyEndpoint", "killSwitch", "smokeTest")


class LlmGateway(pulumi.ComponentResource):
    """What `pulumi package add` generates, reduced to the call it makes."""

    def __init__(
        self, name: str, props: dict[str, Any], opts: pulumi.ResourceOptions | None = None
    ):
        super().__init__(
            "llm-gateway:index:LlmGateway",
            name,
            {**dict.fromkeys(OUTPUTS), **props},  # outputs the engine fills in
            opts,
            remote=True,
        )


config = pulumi.Config()
gateway = LlmGateway(
    "consumer",
    {
        "openaiKey": config.require_secret("openaiKey"),
        "namespace": config.require("namespace"),
        "openaiBaseUrl": config.require("openaiBaseUrl"),
        "agentgateway": {"enabled": False},
        "proxy": config.require_object("proxy"),
        "kubeconfig": config.require("kubeconfig"),
    },
)
for name in OUTPUTS:
    pulumi.export(name, getattr(gateway, name))
