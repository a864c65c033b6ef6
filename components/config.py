"""Reading the stack config: raw `pulumi.Config` values → validated `LlmGatewayConfig`.

Runs before any resource is declared. Every problem is collected, then reported together,
each naming the config key, what is wrong with it and a command that sets a good value
(the commands come from the model's examples, see config_reference.py). The provider key
is never copied into the model: it stays a Pulumi secret output.
"""

import difflib
import json
import os
import re
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

import pulumi
from pydantic import ValidationError

from . import config_reference
from .config_model import LlmGatewayConfig, RuleViolations

CONFIG_NAMESPACE = "llm-gateway"


@dataclass(frozen=True)
class ConfigProblem:
    """One bad config value: where, what is wrong, and a command that sets a good value."""

    key: str
    problem: str
    example: str

    def __str__(self) -> str:
        return f"{CONFIG_NAMESPACE}:{self.key}: {self.problem}\n      e.g. {self.example}"


class ConfigError(pulumi.RunError):
    """Raised before any resource is declared; lists every problem at once."""

    def __init__(self, problems: list[ConfigProblem]) -> None:
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"stack config has {len(problems)} problem(s):\n{lines}")


OPENAI_KEY = config_reference.OPENAI_KEY
MISSING_KEY = (
    "is required but not set (leave the value off the command and pulumi prompts for it, "
    "or pipe it on stdin: either keeps the key out of shell history)"
)
# A command that sets a good value, per key; shown with every problem on that key.
EXAMPLES: dict[str, str] = config_reference.examples()
OPENAI_KEY_COMMAND = EXAMPLES[OPENAI_KEY]
_STRUCTURED_KEYS = config_reference.top_level_structured_keys()
_KNOWN_KEYS = {f.alias or name for name, f in LlmGatewayConfig.model_fields.items()} | {OPENAI_KEY}
# Values that may carry credentials (URL userinfo or query, an inline kubeconfig): a
# problem with them never quotes the value. Keys stored with --secret are not quoted either.
_NEVER_QUOTED = config_reference.sensitive_keys()


def _unknown_key(key: str) -> ConfigProblem:
    """An unknown key, with the closest known key as the suggested fix."""
    known = sorted(set(EXAMPLES) | _KNOWN_KEYS)
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    if close:
        return ConfigProblem(key, f"unknown key; did you mean {close[0]}?", _example(close[0]))
    return ConfigProblem(key, "unknown key", "see the config reference table in README.md")


def _example(key: str) -> str:
    item_key = re.sub(r"\[\d+\]\.", "[].", key)  # allowedClients[1].podLabels → [].podLabels
    key = re.sub(r"\[\d+\]", "", item_key)  # proxy.allowedModels[2] → proxy.allowedModels
    if item_key in EXAMPLES:
        return EXAMPLES[item_key]
    while key not in EXAMPLES and "." in key:
        key = key.rsplit(".", 1)[0]
    return EXAMPLES.get(key, f"see the config reference table in README.md for {key}")


def _key_of(loc: tuple[int | str, ...]) -> str:
    parts: list[str] = []
    for part in loc:
        if isinstance(part, int):
            parts[-1] = f"{parts[-1]}[{part}]" if parts else f"[{part}]"
        else:
            parts.append(part)
    return ".".join(parts)


def _rule_problems(prefix: str, rules: RuleViolations) -> list[ConfigProblem]:
    problems = []
    for rule in rules.violations:
        key = f"{prefix}.{rule.key}" if prefix else rule.key
        fix = config_reference.set_command(*rule.fix) if rule.fix else _example(key)
        problems.append(ConfigProblem(key, rule.message, fix))
    return problems


def _problems_from(error: ValidationError, unquoted: Collection[str]) -> list[ConfigProblem]:
    problems = []
    for item in error.errors():
        key = _key_of(item["loc"])
        rules = item.get("ctx", {}).get("error")
        if isinstance(rules, RuleViolations):
            problems += _rule_problems(key, rules)
            continue
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            problems.append(_unknown_key(key))
            continue
        quotable = key not in unquoted and (not item["loc"] or str(item["loc"][0]) not in unquoted)
        if quotable and "input" in item and not isinstance(item["input"], dict | list):
            message = f"{message} (got {item['input']!r})"
        problems.append(ConfigProblem(key, message, _example(key)))
    return problems


@dataclass(frozen=True)
class StackConfig:
    """The validated config plus the key, which only ever exists as a secret output."""

    config: LlmGatewayConfig
    openai_key: pulumi.Output[str]


_NOT_STRUCTURED = "must be an object (a YAML map) or, for a list key, a YAML list"


def _raw_values(config: pulumi.Config) -> tuple[dict[str, Any], list[ConfigProblem]]:
    raw: dict[str, Any] = {}
    problems: list[ConfigProblem] = []
    for key in sorted(_KNOWN_KEYS - {OPENAI_KEY}):
        # Read raw: a key stored with --secret (e.g. an inline kubeconfig) would make
        # Config.get warn; secrecy is restored where the value is used.
        value = pulumi.runtime.get_config(f"{config.name}:{key}")
        if value is None:
            continue
        if key in _STRUCTURED_KEYS:
            try:
                raw[key] = json.loads(value)
            except json.JSONDecodeError:
                problems.append(ConfigProblem(key, _NOT_STRUCTURED, _example(key)))
                continue
        else:
            raw[key] = value
    return raw, problems


def _unknown_top_level_keys(config: pulumi.Config) -> list[ConfigProblem]:
    prefix = f"{config.name}:"
    seen = set(pulumi.runtime.get_config_env() or {}) | set(pulumi.runtime.config.CONFIG.get())
    unknown = sorted(k[len(prefix) :] for k in seen if k.startswith(prefix))
    return [_unknown_key(key) for key in unknown if key not in _KNOWN_KEYS]


def _provider_key_problems(raw: dict[str, Any]) -> list[ConfigProblem]:
    """`kubernetes:context`/`kubernetes:kubeconfig` set without our own key.

    Only Pulumi's default Kubernetes provider reads those; LlmGateway's is explicit, so
    they would be silently ignored and the stack would go to the ambient kubeconfig's
    current cluster.
    """
    problems = []
    for key in ("context", "kubeconfig"):
        provider_key = f"kubernetes:{key}"
        if key not in raw and pulumi.runtime.get_config(provider_key) is not None:
            problems.append(
                ConfigProblem(
                    key,
                    f"{provider_key} is set, but the package's own Kubernetes provider "
                    f"reads only {CONFIG_NAMESPACE}:{key} (unset), so the stack would go to "
                    "the ambient kubeconfig's current cluster; set it (as well, if other "
                    "resources use the default provider)",
                    EXAMPLES[key],
                )
            )
    return problems


def _key_problems(config: pulumi.Config) -> list[ConfigProblem]:
    # get_config reads the decrypted value without a "use get_secret" warning; the value
    # is only tested here, never echoed.
    raw_key = pulumi.runtime.get_config(f"{config.name}:{OPENAI_KEY}")
    if raw_key is None:
        return [ConfigProblem(OPENAI_KEY, MISSING_KEY, OPENAI_KEY_COMMAND)]
    problems = []
    if not isinstance(raw_key, str) or not raw_key.strip():
        problems.append(ConfigProblem(OPENAI_KEY, "is empty", OPENAI_KEY_COMMAND))
    elif any(ch.isspace() for ch in raw_key.strip()):
        problems.append(
            ConfigProblem(
                OPENAI_KEY,
                "contains whitespace inside the key (a paste error?)",
                OPENAI_KEY_COMMAND,
            )
        )
    if _stored_in_plaintext(config, OPENAI_KEY):
        problems.append(
            ConfigProblem(
                OPENAI_KEY,
                "is stored in plaintext in the stack file; store it encrypted",
                OPENAI_KEY_COMMAND,
            )
        )
    return problems


def _stored_encrypted(config: pulumi.Config, key: str) -> bool:
    """Whether the runtime lists `key` as secret.

    The CLI passes secret key names in PULUMI_CONFIG_SECRET_KEYS (JSON `null` when no key
    at all is secret); the Automation API sets them in-process.
    """
    full_key = f"{config.name}:{key}"
    return pulumi.runtime.is_config_secret(full_key) or full_key in (
        pulumi.runtime.get_config_secret_keys_env() or []
    )


def _stored_in_plaintext(config: pulumi.Config, key: str) -> bool:
    """True only when the runtime says which keys are secret and `key` is not one.

    With no list from the CLI we cannot tell, so we do not accuse.
    """
    if _stored_encrypted(config, key):
        return False
    return "PULUMI_CONFIG_SECRET_KEYS" in os.environ


def validate_config(
    raw: dict[str, Any], *, secret_keys: Collection[str] = ()
) -> tuple[LlmGatewayConfig | None, list[ConfigProblem]]:
    """Turn raw camelCase values into an LlmGatewayConfig, or the list of what is wrong.

    Problems quote the value they found, except under `secret_keys` (top-level keys
    stored encrypted) and keys whose values may carry credentials.
    """
    try:
        return LlmGatewayConfig.model_validate(raw), []
    except ValidationError as error:
        return None, _problems_from(error, _NEVER_QUOTED | set(secret_keys))


def load_config(config: pulumi.Config | None = None) -> StackConfig:
    """Read and validate the whole stack config; raise ConfigError listing every problem."""
    config = config or pulumi.Config(CONFIG_NAMESPACE)
    raw, problems = _raw_values(config)
    problems += _unknown_top_level_keys(config)
    problems += _provider_key_problems(raw)
    problems += _key_problems(config)
    secret_keys = {key for key in raw if _stored_encrypted(config, key)}
    validated, model_problems = validate_config(raw, secret_keys=secret_keys)
    problems += model_problems
    if problems or validated is None:
        raise ConfigError(problems)
    return StackConfig(config=validated, openai_key=config.require_secret(OPENAI_KEY))
