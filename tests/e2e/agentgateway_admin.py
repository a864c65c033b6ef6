"""What the real agentgateway controller made of our objects, read from its admin endpoint.

scripts/local-node/agentgateway-controller.sh runs the controller (v1.4.1) inside the e2e network
namespace; scripts/e2e.sh then exports LLM_GATEWAY_E2E_AGW_ADMIN=http://localhost:9095.
`GET /snapshots/krt` dumps the controller's internal collections (istio krt) as JSON: a list
of {name, state: {outputs: {key: object}, synced}}. The ones read here (v1.4.1):

  backends/Agentgateway   {"resource": {"backend": Backend}}   one per (Gateway, backend)
  translator/HTTPRoutes   {"resource": {"route": Route}}       one per (Gateway, rule, listener)
  XDS/type.googleapis.com/agentgateway.dev.resource.Resource
                          {"name", "version", "resource": {"value": base64 protobuf}}: what
                          is served to the data plane, one entry per bind/listener/route/backend

Backend, Route: the controller's protobuf types (api/resource.proto) in protobuf JSON. A
backend is translated only while a route of some Gateway references it (the kill switch makes
ours vanish). The translated backend carries the provider key in clear (an `auth.key.secret`
inline policy): it is kept in a private attribute that neither repr nor comparisons show and
is only compared (`key_matches`) or fingerprinted, so no assertion message can carry it.
"""

from __future__ import annotations

import base64
import copy
import hmac
import json
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx
import pytest
from kubernetes import watch

from proxy.fingerprint import key_fingerprint

ADMIN_ENV = "LLM_GATEWAY_E2E_AGW_ADMIN"
BACKENDS = "backends/Agentgateway"
ROUTES = "translator/HTTPRoutes"
XDS = "XDS/type.googleapis.com/agentgateway.dev.resource.Resource"
SNAPSHOT_TIMEOUT_S = 10.0
# Keys of one AI provider entry that are not the provider kind itself (openai, anthropic...).
_PROVIDER_FIELDS = frozenset(
    {"name", "hostOverride", "pathOverride", "pathPrefix", "baseUrl", "inlinePolicies"}
    | {"providerBackend", "modelOverride", "format"}
)

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


@dataclass(frozen=True)
class TranslatedBackend:
    """An AgentgatewayBackend with one AI provider, as the controller translated it."""

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
    # The whole translation, key blanked, canonical JSON: "nothing else changed" compares it.
    shape: str = field(repr=False)
    _key: str | None = field(default=None, repr=False, compare=False)

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

    @classmethod
    def from_resource(cls, backend: dict[str, Any]) -> TranslatedBackend:
        ref = backend["name"]
        (group,) = backend["ai"]["providerGroups"]
        (provider,) = group["providers"]
        (kind,) = [k for k in provider if k not in _PROVIDER_FIELDS]
        policies = [*backend.get("inlinePolicies", []), *provider.get("inlinePolicies", [])]
        key, route_types, sni, tls = None, {}, None, False
        for policy in policies:
            if "auth" in policy:
                key = (policy["auth"].get("key") or {}).get("secret")
            if "ai" in policy:
                route_types = dict(policy["ai"].get("routes") or {})
            if "backendTls" in policy:
                tls, sni = True, policy["backendTls"].get("hostname")
        blanked = copy.deepcopy(backend)
        for policy in blanked.get("inlinePolicies", []):
            if "secret" in (policy.get("auth") or {}).get("key", {}):
                policy["auth"]["key"]["secret"] = "<key>"
        override = provider.get("hostOverride") or {}
        return cls(
            namespace=ref["namespace"],
            name=ref["name"],
            provider=kind,
            model=(provider[kind] or {}).get("model"),
            route_types=route_types,
            host=override.get("host"),
            port=override.get("port"),
            path_prefix=provider.get("pathPrefix"),
            tls=tls,
            tls_sni=sni,
            shape=json.dumps(blanked, sort_keys=True),
            _key=key,
        )


@dataclass(frozen=True)
class TranslatedRoute:
    """One route the controller made from an HTTPRoute rule, for one Gateway listener."""

    gateway: str
    listener: str
    path_prefixes: tuple[str, ...]
    backends: tuple[str, ...]

    @classmethod
    def from_output(cls, output: dict[str, Any]) -> TranslatedRoute:
        route, gateway = output["resource"]["route"], output["gateway"]
        return cls(
            gateway=f"{gateway['Namespace']}/{gateway['Name']}",
            listener=route.get("listenerKey", ""),
            path_prefixes=tuple(
                m["path"]["pathPrefix"]
                for m in route.get("matches") or []
                if "pathPrefix" in (m.get("path") or {})
            ),
            backends=tuple(
                (b.get("backend") or {}).get("backend", "") for b in route.get("backends") or []
            ),
        )


class Snapshot:
    """One `GET /snapshots/krt`: the controller's collections by name."""

    def __init__(self, collections: list[dict[str, Any]]) -> None:
        self._outputs: dict[str, dict[str, Any]] = {}
        for collection in collections:
            outputs = (collection.get("state") or {}).get("outputs") or {}
            self._outputs.setdefault(collection["name"], {}).update(outputs)

    def outputs(self, collection: str) -> dict[str, Any]:
        """The output objects of a collection by key (empty when it has none)."""
        return self._outputs.get(collection, {})

    def backend(self, namespace: str, name: str) -> TranslatedBackend | None:
        """The translated AgentgatewayBackend namespace/name, or None when it is not there.

        One translation exists per Gateway whose routes reference the backend; they are the
        same, so any one is returned."""
        for output in self.outputs(BACKENDS).values():
            backend = output["resource"]["backend"]
            if backend.get("name") == {"namespace": namespace, "name": name}:
                return TranslatedBackend.from_resource(backend)
        return None

    def routes(self, namespace: str, name: str) -> list[TranslatedRoute]:
        """The translated routes of HTTPRoute namespace/name (empty when there are none)."""
        found = []
        for output in self.outputs(ROUTES).values():
            ref = output["resource"]["route"].get("name") or {}
            if (ref.get("kind"), ref.get("namespace"), ref.get("name")) == (
                "HTTPRoute",
                namespace,
                name,
            ):
                found.append(TranslatedRoute.from_output(output))
        return sorted(found, key=repr)

    def served(self, gateway_namespace: str, gateway: str) -> dict[str, tuple[str, bytes]]:
        """What the controller serves over xDS to Gateway's data plane: resource name (e.g.
        `backend/NS/NAME`, `route/...`, `listener/...`, `bind/...`) → (version, protobuf)."""
        served = {}
        for output in self.outputs(XDS).values():
            target = output.get("ForGateway") or {}
            if (target.get("Namespace"), target.get("Name")) != (gateway_namespace, gateway):
                continue
            value = base64.b64decode(output["resource"]["value"])
            served[output["name"]] = (output["version"], value)
        return served

    def served_versions(self, gateway_namespace: str, gateway: str) -> dict[str, str]:
        """xDS resource name → version (a content hash) of what Gateway's data plane gets."""
        return {name: v for name, (v, _) in self.served(gateway_namespace, gateway).items()}

    def serves_key(self, gateway: tuple[str, str], backend: tuple[str, str], key: str) -> bool:
        """True when the backend's xDS resource served to the Gateway embeds exactly this key
        (protobuf strings are stored verbatim)."""
        served = self.served(*gateway).get(f"backend/{backend[0]}/{backend[1]}")
        return served is not None and key.encode() in served[1]


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
    """Times a key rotation: the API server stores the new key → the controller translated it.

    While `pulumi up` runs, one thread watches the Secret (a watch event arrives within
    milliseconds of the write) and one polls the controller's snapshot every 20 ms.
    `latency` is the gap between the two sightings of the new key (resolution: one poll
    period plus one snapshot fetch, a few ms here).
    """

    POLL_S = 0.02

    def __init__(
        self,
        admin: Admin,
        core: Any,
        secret: tuple[str, str, str],
        backend: tuple[str, str],
        new_key: str,
    ) -> None:
        """core: a kubernetes CoreV1Api; secret: (namespace, name, data entry)."""
        self._admin = admin
        self._core = core
        self._secret = secret
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
        """Block until both sightings happened (or timeout), then stop watching."""
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

    def _holds_new_key(self, secret: Any) -> bool:
        encoded = (secret.data or {}).get(self._secret[2])
        return encoded is not None and hmac.compare_digest(
            base64.b64decode(encoded), self._new_key.encode()
        )

    def _watch_secret(self) -> None:
        namespace, name, _ = self._secret
        while not self._stop.is_set() and self.secret_at is None:
            # Short server-side timeouts: the loop re-checks the stop flag between watches.
            stream = watch.Watch().stream(  # type: ignore[no-untyped-call]
                self._core.list_namespaced_secret,
                namespace,
                field_selector=f"metadata.name={name}",
                timeout_seconds=2,
            )
            for event in stream:
                if self._holds_new_key(event["object"]):
                    self.secret_at = time.monotonic()
                    return

    def _watch_translation(self) -> None:
        while not self._stop.is_set() and self.translated_at is None:
            try:
                backend = self._admin.snapshot().backend(*self._backend)
            except httpx.HTTPError:
                backend = None
            if backend is not None and backend.key_matches(self._new_key):
                self.translated_at = time.monotonic()
            self._stop.wait(self.POLL_S)
