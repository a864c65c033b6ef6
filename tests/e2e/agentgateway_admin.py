"""What the real agentgateway controller made of our objects, read from its admin endpoint.

scripts/e2e/agentgateway-controller.sh runs the controller (v1.4.1) inside the e2e network
namespace; scripts/e2e.sh then exports LLM_GATEWAY_E2E_AGW_ADMIN=http://localhost:9095.
`GET /snapshots/krt` dumps the controller's internal collections (istio krt) as JSON: a list
of {name, state: {outputs: {key: object}, synced}}. The ones read here:

  backends/Agentgateway  AgentgatewayBackend → {"resource": {"backend": {...}}} (protobuf JSON)
  the route collections  HTTPRoute → {"resource": {"route": {...}}}, keyed per Gateway

The translated backend carries the provider key in clear (`auth.key.secret`): it is kept in a
private attribute that neither repr nor comparisons show, and is only ever compared
(`key_matches`) or fingerprinted, so no assertion message can carry it.
"""

from __future__ import annotations

import hmac
import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx
import pytest

from proxy.fingerprint import key_fingerprint

ADMIN_ENV = "LLM_GATEWAY_E2E_AGW_ADMIN"
BACKENDS_COLLECTION = "backends/Agentgateway"
SNAPSHOT_TIMEOUT_S = 10.0

T = TypeVar("T")


def admin_url() -> str | None:
    """The controller's admin base URL when the e2e script runs the controller, else None."""
    return os.environ.get(ADMIN_ENV) or None


def require_admin() -> Admin:
    """The admin client, or skip the calling test (no controller in this run)."""
    url = admin_url()
    if url is None:
        pytest.skip(f"needs the agentgateway controller ({ADMIN_ENV}; scripts/e2e.sh sets it)")
    return Admin(url)


def _walk(node: Any) -> Iterator[dict[str, Any]]:
    """Every JSON object at or below node, depth first."""
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


@dataclass(frozen=True)
class TranslatedBackend:
    """The AgentgatewayBackend as the controller translated it (one AI provider)."""

    namespace: str
    name: str
    provider: str
    model: str | None
    route_types: dict[str, str]
    host: str | None
    port: int | None
    path_prefix: str | None
    tls: bool
    tls_sni: str | None
    # The whole translation with the key blanked: "nothing else changed" compares this.
    shape: str = field(repr=False)
    _key: str | None = field(repr=False, compare=False)

    @property
    def has_key(self) -> bool:
        return bool(self._key)

    def key_matches(self, expected: str) -> bool:
        """True when the translated key is exactly `expected` (constant-time compare)."""
        return self._key is not None and hmac.compare_digest(self._key, expected)

    @property
    def key_fingerprint(self) -> str | None:
        """The key's public fingerprint (proxy.fingerprint), safe to print."""
        return key_fingerprint(self._key) if self._key else None


@dataclass(frozen=True)
class TranslatedRoute:
    """One route the controller produced from an HTTPRoute rule, for one Gateway listener."""

    namespace: str
    name: str
    listener_key: str
    path_prefixes: tuple[str, ...]
    backends: tuple[str, ...]


class Snapshot:
    """One `GET /snapshots/krt`: the controller's collections by name."""

    def __init__(self, collections: list[dict[str, Any]]) -> None:
        self.collections: dict[str, list[dict[str, Any]]] = {}
        for collection in collections:
            self.collections.setdefault(collection["name"], []).append(collection)

    def outputs(self, name: str) -> dict[str, Any]:
        """Every output object of the collection(s) called name (empty when unknown)."""
        merged: dict[str, Any] = {}
        for collection in self.collections.get(name, []):
            merged.update(collection.get("state", {}).get("outputs") or {})
        return merged

    def resources(self, kind: str) -> Iterator[dict[str, Any]]:
        """Every translated resource of `kind` ("backend", "route", ...) in any collection."""
        seen: set[str] = set()
        for collections in self.collections.values():
            for collection in collections:
                for output in (collection.get("state", {}).get("outputs") or {}).values():
                    resource = output.get("resource") if isinstance(output, dict) else None
                    if not isinstance(resource, dict) or kind not in resource:
                        continue
                    item = resource[kind]
                    ident = json.dumps(item, sort_keys=True)
                    if ident not in seen:
                        seen.add(ident)
                        yield item

    @property
    def synced(self) -> bool:
        states = [c.get("state", {}) for cs in self.collections.values() for c in cs]
        return all(state.get("synced", False) for state in states)

    def backend(self, namespace: str, name: str) -> TranslatedBackend | None:
        """The translated AgentgatewayBackend namespace/name, or None when it is absent."""
        for output in self.outputs(BACKENDS_COLLECTION).values():
            backend = (output.get("resource") or {}).get("backend")
            if backend and backend.get("name") == {"namespace": namespace, "name": name}:
                return _translated_backend(namespace, name, backend)
        return None

    def routes(self, namespace: str, name: str) -> list[TranslatedRoute]:
        """The translated routes of HTTPRoute namespace/name (empty when there are none)."""
        found = []
        for route in self.resources("route"):
            ref = route.get("name") or {}
            if ref.get("namespace") != namespace or ref.get("name") != name:
                continue
            prefixes = tuple(
                m["path"]["pathPrefix"]
                for m in route.get("matches") or []
                if "pathPrefix" in (m.get("path") or {})
            )
            backends = tuple(
                (b.get("backend") or {}).get("backend", "") for b in route.get("backends") or []
            )
            found.append(
                TranslatedRoute(namespace, name, route.get("listenerKey", ""), prefixes, backends)
            )
        return found


def _translated_backend(namespace: str, name: str, backend: dict[str, Any]) -> TranslatedBackend:
    (group,) = backend["ai"]["providerGroups"]
    (provider,) = group["providers"]
    kinds = [
        k
        for k in provider
        if k
        not in {
            "name",
            "hostOverride",
            "pathOverride",
            "pathPrefix",
            "baseUrl",
            "inlinePolicies",
            "providerBackend",
            "modelOverride",
        }
    ]
    (kind,) = kinds
    policies = [*backend.get("inlinePolicies", []), *provider.get("inlinePolicies", [])]
    key = None
    route_types: dict[str, str] = {}
    tls, sni = False, None
    for policy in policies:
        if "auth" in policy:
            key = policy["auth"].get("key", {}).get("secret")
        if "ai" in policy:
            route_types = dict(policy["ai"].get("routes") or {})
        if "backendTls" in policy:
            tls, sni = True, policy["backendTls"].get("hostname")
    host_override = provider.get("hostOverride") or {}
    blank = json.loads(json.dumps(backend))
    for node in _walk(blank):
        if isinstance(node.get("key"), dict) and "secret" in node["key"]:
            node["key"]["secret"] = "<redacted>"
    return TranslatedBackend(
        namespace=namespace,
        name=name,
        provider=kind,
        model=(provider[kind] or {}).get("model"),
        route_types=route_types,
        host=host_override.get("host"),
        port=host_override.get("port"),
        path_prefix=provider.get("pathPrefix"),
        tls=tls,
        tls_sni=sni,
        shape=json.dumps(blank, sort_keys=True),
        _key=key,
    )


@dataclass(frozen=True)
class Admin:
    """The controller's admin endpoint (localhost:9095 inside the e2e network namespace)."""

    base_url: str

    def snapshot(self) -> Snapshot:
        response = httpx.get(f"{self.base_url}/snapshots/krt", timeout=SNAPSHOT_TIMEOUT_S)
        response.raise_for_status()
        return Snapshot(response.json())

    def wait_for(
        self, what: str, probe: Callable[[Snapshot], T | None], timeout: float = 30.0
    ) -> tuple[T, float]:
        """Poll snapshots until probe returns a value; (value, seconds waited). Fails with what."""
        began = time.monotonic()
        while True:
            value = probe(self.snapshot())
            waited = time.monotonic() - began
            if value is not None and value is not False:
                return value, waited
            if waited > timeout:
                raise AssertionError(f"controller: {what} not seen within {timeout:.0f}s")
            time.sleep(0.1)


class KeyArrival:
    """Times a key rotation end to end: the Secret holds the new key → the translation does.

    Two pollers (50 ms) run in threads while `pulumi up` runs: one reads the Secret from the
    API server, one reads the controller's snapshot. `latency` is the gap between the first
    sighting of the new key in each (resolution: the poll period plus one snapshot fetch).
    """

    POLL_S = 0.05

    def __init__(
        self,
        admin: Admin,
        read_secret_key: Callable[[], str | None],
        backend: tuple[str, str],
        new_key: str,
    ) -> None:
        self._admin = admin
        self._read_secret_key = read_secret_key
        self._backend = backend
        self._new_key = new_key
        self.secret_at: float | None = None
        self.translated_at: float | None = None
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._watch_secret, daemon=True),
            threading.Thread(target=self._watch_translation, daemon=True),
        ]

    def __enter__(self) -> KeyArrival:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)

    def wait(self, timeout: float) -> None:
        """Block until both sightings happened (or timeout), then stop polling."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and (
            self.secret_at is None or self.translated_at is None
        ):
            time.sleep(self.POLL_S)
        self._stop.set()

    @property
    def latency(self) -> float | None:
        if self.secret_at is None or self.translated_at is None:
            return None
        return max(0.0, self.translated_at - self.secret_at)

    def _watch_secret(self) -> None:
        while not self._stop.is_set() and self.secret_at is None:
            value = self._read_secret_key()
            if value is not None and hmac.compare_digest(value, self._new_key):
                self.secret_at = time.monotonic()
            self._stop.wait(self.POLL_S)

    def _watch_translation(self) -> None:
        while not self._stop.is_set() and self.translated_at is None:
            try:
                backend = self._admin.snapshot().backend(*self._backend)
            except httpx.HTTPError:
                backend = None
            if backend is not None and backend.key_matches(self._new_key):
                self.translated_at = time.monotonic()
            self._stop.wait(self.POLL_S)
