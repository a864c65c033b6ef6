"""llm-gateway's Pulumi components: what a Pulumi program imports.

from components import LlmGateway, LlmGatewayArgs, load_config

stack = load_config()                      # validated, or ConfigError listing all problems
gw = LlmGateway("llm-gateway", LlmGatewayArgs(config=stack.config, openai_key=stack.openai_key))

Naming: "config" is the stack config and its model tree (`LlmGatewayConfig` and one
`…Config` per section); "settings" is reserved for the proxy process's own environment
settings (proxy/settings.py). "upstream" is where requests go (`openaiBaseUrl`),
"endpoint" the in-cluster URL a data plane serves.
"""

from .agentgateway_plane import AgentgatewayPlane
from .config import ConfigError, ConfigProblem, StackConfig, load_config, validate_config
from .config_model import (
    AgentgatewayConfig,
    ClientConfig,
    GatewayConfig,
    LlmGatewayConfig,
    ProxyConfig,
    QuantitiesConfig,
    ResourcesConfig,
    SmokeTestConfig,
)
from .key_secret import KeySecret
from .llm_gateway import LlmGateway, LlmGatewayArgs
from .llm_proxy import LlmProxy
from .provider import (
    SecretMutabilityError,
    mark_secret_mutable,
    secret_mutable_provider,
)

__all__ = [
    "AgentgatewayConfig",
    "AgentgatewayPlane",
    "ClientConfig",
    "ConfigError",
    "ConfigProblem",
    "GatewayConfig",
    "KeySecret",
    "LlmGateway",
    "LlmGatewayArgs",
    "LlmGatewayConfig",
    "LlmProxy",
    "ProxyConfig",
    "QuantitiesConfig",
    "ResourcesConfig",
    "SecretMutabilityError",
    "SmokeTestConfig",
    "StackConfig",
    "load_config",
    "mark_secret_mutable",
    "secret_mutable_provider",
    "validate_config",
]
