"""Reading the stack config: raw `pulumi.Config` values → validated `GatewayConfig`.

Runs before any resource is declared. Every problem is collected, then reported together,
each naming the config key, what is wrong with it and a command that sets a good value.
The provider key is never copied into the model: it stays a Pulumi secret output.
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

from .settings import GatewayConfig

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


def _set(path: str, value: str, *, secret: bool = False) -> str:
    flags = " --secret" if secret else ""
    flags += " --path" if "." in path or "[" in path else ""
    return f"pulumi config set{flags} {path} {value}"


OPENAI_KEY_COMMAND = _set("openaiKey", "sk-...", secret=True)
MISSING_KEY = (
    "is required but not set (leave the value off the command and pulumi prompts for it, "
    "or pipe it on stdin: either keeps the key out of shell history)"
)

# A good value per key, shown with every problem on that key.
EXAMPLES: dict[str, str] = {
    "openaiKey": OPENAI_KEY_COMMAND,
    "namespace": _set("namespace", "llm-gateway"),
    "createNamespace": _set("createNamespace", "false"),
    "secretName": _set("secretName", "openai-api-key"),
    "model": _set("model", "gpt-4o-mini"),
    "openaiBaseUrl": _set("openaiBaseUrl", "https://api.openai.com/v1"),
    "gateway": _set("gateway.port", "80"),
    "gateway.name": _set("gateway.name", "llm-gateway"),
    "gateway.className": _set("gateway.className", "agentgateway"),
    "gateway.port": _set("gateway.port", "80"),
    "gateway.pathPrefix": _set("gateway.pathPrefix", "/openai"),
    "agentgateway": _set("agentgateway.enabled", "true"),
    "agentgateway.enabled": _set("agentgateway.enabled", "true"),
    "proxy": _set("proxy.enabled", "true"),
    "proxy.enabled": _set("proxy.enabled", "true"),
    "proxy.image": _set("proxy.image", "ghcr.io/acme/llm-proxy:0.1.0"),
    "proxy.imageDigest": _set("proxy.imageDigest", "sha256:<64 hex chars from docker push>"),
    "proxy.imagePullPolicy": _set("proxy.imagePullPolicy", "IfNotPresent"),
    "proxy.replicas": _set("proxy.replicas", "2"),
    "proxy.resources": _set("proxy.resources.limits.memory", "256Mi"),
    "proxy.resources.requests": _set("proxy.resources.requests.memory", "64Mi"),
    "proxy.resources.limits": _set("proxy.resources.limits.memory", "256Mi"),
    "proxy.resources.requests.cpu": _set("proxy.resources.requests.cpu", "50m"),
    "proxy.resources.requests.memory": _set("proxy.resources.requests.memory", "64Mi"),
    "proxy.resources.limits.cpu": _set("proxy.resources.limits.cpu", "500m"),
    "proxy.resources.limits.memory": _set("proxy.resources.limits.memory", "256Mi"),
    "proxy.allowedModels": _set("'proxy.allowedModels[0]'", "gpt-4o-mini"),
    "proxy.maxInFlight": _set("proxy.maxInFlight", "256"),
    "proxy.maxBodyBytes": _set("proxy.maxBodyBytes", "16777216"),
    "proxy.connectTimeout": _set("proxy.connectTimeout", "5"),
    "proxy.readTimeout": _set("proxy.readTimeout", "600"),
    "proxy.egressProxy": _set("proxy.egressProxy", "http://egress.internal:3128"),
    "proxy.noProxy": _set("'proxy.noProxy[0]'", ".internal.example.com"),
    "killSwitch": _set("killSwitch", "true"),
    "smokeTest": _set("smokeTest.model", "gpt-4o-mini"),
    "smokeTest.model": _set("smokeTest.model", "gpt-4o-mini"),
    "kubeconfig": _set("kubeconfig", "~/.kube/config"),
    "context": _set("context", "kind-llm"),
    "skipAwait": _set("skipAwait", "false"),
}

_OBJECT_KEYS = ("gateway", "agentgateway", "proxy", "smokeTest")
_KNOWN_KEYS = {f.alias or name for name, f in GatewayConfig.model_fields.items()} | {"openaiKey"}


def _unknown_key(key: str) -> ConfigProblem:
    """An unknown key, with the closest known key as the suggested fix."""
    known = sorted(set(EXAMPLES) | _KNOWN_KEYS)
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    if close:
        return ConfigProblem(key, f"unknown key; did you mean {close[0]}?", _example(close[0]))
    return ConfigProblem(key, "unknown key", "see the config reference table in README.md")


def _example(key: str) -> str:
    key = re.sub(r"\[\d+\]", "", key)  # proxy.allowedModels[2] → proxy.allowedModels
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


# Values that may carry credentials (URL userinfo or query, an inline kubeconfig): a
# problem with them never quotes the value. Keys stored with --secret are not quoted either.
_NEVER_QUOTED = frozenset({"openaiBaseUrl", "kubeconfig", "proxy.egressProxy"})


def _problems_from(error: ValidationError, unquoted: Collection[str]) -> list[ConfigProblem]:
    problems = []
    for item in error.errors():
        key = _key_of(item["loc"])
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            problems.append(_unknown_key(key))
            continue
        quotable = key not in unquoted and (not item["loc"] or str(item["loc"][0]) not in unquoted)
        if quotable and "input" in item and not isinstance(item["input"], dict | list):
            message = f"{message} (got {item['input']!r})"
        problems.append(ConfigProblem(key, message, _example(key)))
    return problems


def cross_field_problems(cfg: GatewayConfig) -> list[ConfigProblem]:
    """Checks that involve more than one key; run once every key is valid on its own."""
    problems = []
    if not cfg.agentgateway.enabled and not cfg.proxy.enabled:
        problems.append(
            ConfigProblem(
                "agentgateway.enabled",
                "both data planes are disabled (agentgateway.enabled and proxy.enabled are "
                "false); enable at least one",
                EXAMPLES["proxy.enabled"],
            )
        )
    allowed = cfg.proxy.allowed_models
    if cfg.proxy.enabled and allowed:
        if cfg.model is not None and cfg.model not in allowed:
            problems.append(
                ConfigProblem(
                    "model",
                    f"{cfg.model!r} is not in proxy.allowedModels {allowed}; the proxy would "
                    "refuse the model the gateway is pinned to",
                    _set("model", allowed[0]),
                )
            )
        if cfg.smoke_test.model not in allowed:
            problems.append(
                ConfigProblem(
                    "smokeTest.model",
                    f"{cfg.smoke_test.model!r} is not in proxy.allowedModels {allowed}; the "
                    "smoke test through the proxy would get 403",
                    _set("smokeTest.model", allowed[0]),
                )
            )
    return problems


@dataclass(frozen=True)
class StackConfig:
    """The validated settings plus the key, which only ever exists as a secret output."""

    settings: GatewayConfig
    openai_key: pulumi.Output[str]


def _raw_values(config: pulumi.Config) -> tuple[dict[str, Any], list[ConfigProblem]]:
    raw: dict[str, Any] = {}
    problems: list[ConfigProblem] = []
    for key in sorted(_KNOWN_KEYS - {"openaiKey"}):
        # Read raw: a key stored with --secret (e.g. an inline kubeconfig) would make
        # Config.get warn; secrecy is restored where the value is used.
        value = pulumi.runtime.get_config(f"{config.name}:{key}")
        if value is None:
            continue
        if key in _OBJECT_KEYS:
            try:
                raw[key] = json.loads(value)
            except json.JSONDecodeError:
                problems.append(ConfigProblem(key, "must be an object (a YAML map)", _example(key)))
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
    raw_key = pulumi.runtime.get_config(f"{config.name}:openaiKey")
    if raw_key is None:
        return [ConfigProblem("openaiKey", MISSING_KEY, OPENAI_KEY_COMMAND)]
    problems = []
    if not isinstance(raw_key, str) or not raw_key.strip():
        problems.append(ConfigProblem("openaiKey", "is empty", OPENAI_KEY_COMMAND))
    elif any(ch.isspace() for ch in raw_key.strip()):
        problems.append(
            ConfigProblem(
                "openaiKey",
                "contains whitespace inside the key (a paste error?)",
                OPENAI_KEY_COMMAND,
            )
        )
    if _stored_in_plaintext(config, "openaiKey"):
        problems.append(
            ConfigProblem(
                "openaiKey",
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


def validate_settings(
    raw: dict[str, Any], *, secret_keys: Collection[str] = ()
) -> tuple[GatewayConfig | None, list[ConfigProblem]]:
    """Turn raw camelCase values into a GatewayConfig, or the list of what is wrong.

    Problems quote the value they found, except under `secret_keys` (top-level keys
    stored encrypted) and keys whose values may carry credentials.
    """
    try:
        settings = GatewayConfig.model_validate(raw)
    except ValidationError as error:
        return None, _problems_from(error, _NEVER_QUOTED | set(secret_keys))
    return settings, cross_field_problems(settings)


def load_config(config: pulumi.Config | None = None) -> StackConfig:
    """Read and validate the whole stack config; raise ConfigError listing every problem."""
    config = config or pulumi.Config(CONFIG_NAMESPACE)
    raw, problems = _raw_values(config)
    problems += _unknown_top_level_keys(config)
    problems += _provider_key_problems(raw)
    problems += _key_problems(config)
    secret_keys = {key for key in raw if _stored_encrypted(config, key)}
    settings, setting_problems = validate_settings(raw, secret_keys=secret_keys)
    problems += setting_problems
    if problems or settings is None:
        raise ConfigError(problems)
    return StackConfig(settings=settings, openai_key=config.require_secret("openaiKey"))
