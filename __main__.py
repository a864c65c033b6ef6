"""The llm-gateway Pulumi program: typed config → LlmGateway → stack outputs.

No logic here; see components/ (README has the config reference).
"""

import pulumi

from components import LlmGateway, LlmGatewayArgs, load_config

stack = load_config()  # fails the run, listing every problem, before anything is declared
gateway = LlmGateway(
    "llm-gateway", LlmGatewayArgs(config=stack.config, openai_key=stack.openai_key)
)

pulumi.export("namespace", gateway.namespace)
pulumi.export("secretName", gateway.secret_name)
pulumi.export("keyFingerprint", gateway.key_fingerprint)
pulumi.export("gatewayEndpoint", gateway.gateway_endpoint)
pulumi.export("proxyEndpoint", gateway.proxy_endpoint)
pulumi.export("killSwitch", gateway.kill_switch)
pulumi.export("smokeTest", gateway.smoke_test)
pulumi.export("smokeOnUp", gateway.smoke_on_up)
