"""Proxy settings: one typed object built from LLM_PROXY_* env vars and CLI flags.

Flags win over env vars, env vars over defaults. The settings themselves (names, types,
defaults, bounds, meaning) are declared once in proxy/contract.py, which the Pulumi
program reads too; this module adds only how the proxy checks and decodes them. Every
default works on a laptop except the key file, whose default is the Deployment's mount.
"""

import os
from typing import Any, Self

from pydantic import ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from proxy import contract
from proxy.identity.clients import ClientSpec

_SPECS = contract.specs()


class Settings(BaseSettings, contract.ProxySettings):
    """Everything the proxy needs to run; see the README table for each env var."""

    model_config = SettingsConfigDict(
        env_prefix=contract.ENV_PREFIX,
        extra="ignore",
        frozen=True,
        validate_default=True,
        enable_decoding=False,  # lists arrive as the contract encodes them, decoded below
    )

    # The contract says "JSON objects"; the proxy checks each as an app.
    clients: tuple[ClientSpec, ...] = ()

    @field_validator("*")
    @classmethod
    def _check_bounds(cls, value: Any, info: ValidationInfo) -> Any:
        """The contract's bounds (ge, le, gt, min_length) for every setting."""
        if value is None or info.field_name is None:
            return value
        spec = _SPECS[info.field_name][1]
        if spec.ge is not None and value < spec.ge:
            raise ValueError(f"must be at least {spec.ge:g}")
        if spec.le is not None and value > spec.le:
            raise ValueError(f"must be at most {spec.le:g}")
        if spec.gt is not None and value <= spec.gt:
            raise ValueError(f"must be greater than {spec.gt:g}")
        if spec.min_length is not None and len(value) < spec.min_length:
            raise ValueError(f"must hold at least {spec.min_length} character(s)")
        return value

    @field_validator("identity_jwks_url")
    @classmethod
    def _check_jwks_url(cls, value: str | None, info: ValidationInfo) -> str | None:
        """With identity on, a JWKS URL or a pod's env to derive the API server's from."""
        identity_on = info.data.get("identity_mode", "off") != "off"
        if value is None and identity_on and not os.environ.get("KUBERNETES_SERVICE_HOST"):
            raise ValueError(
                "is unset, and so is KUBERNETES_SERVICE_HOST (not in a pod?): set the "
                "service-account JWKS URL"
            )
        if value is not None and not value.startswith(("https://", "http://")):
            raise ValueError("must be an http(s) URL")
        return value

    @field_validator("clients", mode="before")
    @classmethod
    def _parse_clients(cls, value: object) -> object:
        """JSON text (the env var, contract.encode_clients) or a sequence."""
        return contract.decode_clients(value) if isinstance(value, str) else value

    @model_validator(mode="after")
    def _api_needs_secret(self) -> Self:
        if self.key_source == "api" and not self.key_secret:
            raise ValueError(
                "key_source=api needs the Secret's name: set LLM_PROXY_KEY_SECRET "
                "(or --key-secret), or use key_source=file"
            )
        return self

    @field_validator("allowed_models", mode="before")
    @classmethod
    def _split_models(cls, value: object) -> object:
        """Text as contract.encode_models writes it (or a JSON list), or a sequence."""
        return contract.decode_models(value) if isinstance(value, str) else value

    @field_validator("upstream")
    @classmethod
    def _check_upstream(cls, value: str) -> str:
        """contract.check_upstream_url: absolute http(s), a host, no credentials, query or
        fragment; the message never repeats the value (it may hold a password)."""
        return contract.check_upstream_url(value)
