"""LlmGateway as the component package hosts it: typed args in, the same component out.

The args (package/args.py, generated from the config model) arrive from any language
with snake_case keys; they are turned back into the config keys and validated by the
same pydantic model a stack file is, so a bad value fails before any resource is
declared, naming the key. Then it is exactly the Python program's LlmGateway (same type
token, same resources, same outputs).
"""

from collections.abc import Mapping
from typing import Any

import pulumi
from pydantic import BaseModel

from components import LlmGateway as _LlmGateway
from components import LlmGatewayArgs as _LlmGatewayArgs
from components import validate_config
from components.config_model import LlmGatewayConfig
from components.config_reference import model_of

from .args import LlmGatewayArgs
from .codegen import KEY_INPUT, config_key, snake


class ArgsError(pulumi.RunError):
    """Raised before any resource is declared; lists every bad input at once."""


def _config_keys(value: Any, model: type[BaseModel]) -> dict[str, Any]:
    """snake_case input keys → the model's config keys, through nested sections and lists
    (label maps keep their keys); unknown keys pass through for the model to refuse."""
    if not isinstance(value, Mapping):
        return value  # type: ignore[no-any-return]  # the model says what is wrong
    fields = {snake(config_key(n, f)): (config_key(n, f), f) for n, f in model.model_fields.items()}
    result: dict[str, Any] = {}
    for key, item in value.items():
        if key not in fields:
            result[key] = item
            continue
        name, field = fields[key]
        inner = model_of(field.annotation)
        if inner is not None and isinstance(item, list):
            item = [_config_keys(entry, inner) for entry in item]
        elif inner is not None:
            item = _config_keys(item, inner)
        result[name] = item
    return result


def to_config(args: Mapping[str, Any]) -> LlmGatewayConfig:
    """The validated config, or ArgsError naming each bad input by its schema path."""
    raw = _config_keys({k: v for k, v in args.items() if k != KEY_INPUT}, LlmGatewayConfig)
    config, problems = validate_config(raw)
    if problems or config is None:
        lines = "\n".join(f"  - {p.key}: {p.problem}" for p in problems)
        raise ArgsError(f"LlmGateway has {len(problems)} bad input(s):\n{lines}")
    return config


class LlmGateway(_LlmGateway):
    """Keyless LLM access for a cluster: key Secret, data planes, NetworkPolicies, smoke."""

    def __init__(
        self, name: str, args: LlmGatewayArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        config = to_config(args)
        key = pulumi.Output.secret(args["openai_key"])
        super().__init__(name, _LlmGatewayArgs(config=config, openai_key=key), opts)
