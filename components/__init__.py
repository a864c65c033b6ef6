"""llm-gateway's Pulumi components: what a Pulumi program imports.

from components import LlmGateway, LlmGatewayArgs, load_config

stack = load_config()                      # validated, or ConfigError listing all problems
gw = LlmGateway("llm-gateway", LlmGatewayArgs(config=stack.settings, openai_key=stack.openai_key))
"""

from .ai_route import AIRoute
from .config import ConfigError, ConfigProblem, StackConfig, load_config, validate_settings
from .key_secret import KeySecret
from .llm_gateway import LlmGateway, LlmGatewayArgs
from .llm_proxy import LlmProxy
from .openai_backend import OpenAIBackend
from .provider import (
    SecretMutabilityError,
    mark_secret_mutable,
    secret_mutable_provider,
)
from .settings import (
    AgentgatewaySettings,
    GatewayConfig,
    GatewaySettings,
    ProxyResources,
    ProxySettings,
    ResourceQuantities,
    SmokeTestSettings,
)

__all__ = [
    "AIRoute",
    "AgentgatewaySettings",
    "ConfigError",
    "ConfigProblem",
    "GatewayConfig",
    "GatewaySettings",
    "KeySecret",
    "LlmGateway",
    "LlmGatewayArgs",
    "LlmProxy",
    "OpenAIBackend",
    "ProxyResources",
    "ProxySettings",
    "ResourceQuantities",
    "SecretMutabilityError",
    "SmokeTestSettings",
    "StackConfig",
    "load_config",
    "mark_secret_mutable",
    "secret_mutable_provider",
    "validate_settings",
]
