"""The configured apps: who each is (namespace + ServiceAccount) and its budgets.

The table comes from LLM_PROXY_CLIENTS (JSON, written by the Pulumi program from the
stack's `clients`); the same camelCase keys as the stack config.
"""

from collections.abc import Iterable

from pydantic import BaseModel, ConfigDict, Field

ANONYMOUS = "anonymous"  # attribute mode, no credential
OTHER = "other"  # a valid token of an app that is not listed (attribute mode)


class ClientSpec(BaseModel):
    """One app allowed to call, and its limits (None: unlimited)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    name: str = Field(min_length=1, max_length=63, pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    namespace: str = Field(min_length=1, max_length=63)
    service_account: str = Field(alias="serviceAccount", min_length=1, max_length=253)
    allowed_models: tuple[str, ...] = Field(default=(), alias="allowedModels")
    requests_per_minute: int | None = Field(default=None, alias="requestsPerMinute", ge=1)
    tokens_per_minute: int | None = Field(default=None, alias="tokensPerMinute", ge=1)
    tokens_per_day: int | None = Field(default=None, alias="tokensPerDay", ge=1)


class ClientTable:
    """(namespace, ServiceAccount) → app, looked up once per verified token."""

    def __init__(self, clients: Iterable[ClientSpec]) -> None:
        self.by_account: dict[tuple[str, str], ClientSpec] = {}
        self.by_name: dict[str, ClientSpec] = {}
        for client in clients:
            if client.name in (ANONYMOUS, OTHER):
                raise ValueError(f"client name {client.name!r} is reserved (metric label)")
            account = (client.namespace, client.service_account)
            if account in self.by_account or client.name in self.by_name:
                raise ValueError(
                    f"client {client.name!r}: name or {client.namespace}/"
                    f"{client.service_account} listed twice"
                )
            self.by_account[account] = client
            self.by_name[client.name] = client

    def find(self, namespace: str, service_account: str) -> ClientSpec | None:
        return self.by_account.get((namespace, service_account))

    @property
    def labels(self) -> frozenset[str]:
        """Every value the `client` metric label can take."""
        return frozenset(self.by_name) | {ANONYMOUS, OTHER}
