"""What the real agentgateway controller (v1.4.1) makes of objects beyond the dev lifecycle.

Needs the controller (scripts/local-node/agentgateway-controller.sh; LLM_GATEWAY_E2E_AGW_ADMIN):
  - another upstream: `openaiBaseUrl` with a custom host/port/path → the translated backend
    carries that host, port, path prefix and TLS as configured;
  - `pulumi up` waits for the Gateway's Programmed condition (`pulumi.com/waitFor`, off under
    skipAwait): shown with a GatewayClass that appears only while the up is waiting;
  - bad objects: what the package's config validation stops before `pulumi up`, and what
    only the controller can report (objects written past the package, as an operator's
    out-of-band edit would).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from components.shapes import gateway as gateway_shape
from components.shapes.agentgateway_backend import OPENAI_URL, agentgateway_backend
from components.shapes.http_route import http_route
from components.shapes.meta import CustomObject
from tests.e2e import agentgateway_status as agw_status
from tests.e2e.agentgateway_admin import require_admin
from tests.e2e.e2e_kube import GW_GROUP, GW_VERSION, Kube
from tests.e2e.e2e_pulumi import FAKE_KEY, Result, Workspace, init_stack, write_stack_file

pytestmark = pytest.mark.e2e

KEY_FIELD, BACKEND, GATEWAY = "apiKey", "openai", "llm-gateway"


def _stack(
    workspace: Workspace,
    kubeconfig: str,
    stack: str,
    overrides: dict[str, Any],
    settings: dict[str, str],
) -> str:
    """A stack on dev's settings with the agentgateway plane only; returns its namespace."""
    namespace = f"llm-gateway-{stack}"
    write_stack_file(workspace, stack, namespace, {"proxy": {"enabled": False}, **overrides})
    init_stack(workspace, stack, kubeconfig)
    for key, value in settings.items():
        workspace.run("config", "set", "--stack", stack, key, value)
    return namespace


def _destroy(workspace: Workspace, kube: Kube, stack: str, namespace: str) -> None:
    workspace.run("destroy", "--yes", "--skip-preview", "--stack", stack)
    workspace.run("stack", "rm", "--yes", "--force", "--stack", stack)
    assert kube.wait_gone("Namespace", namespace, timeout=90), f"namespace {namespace} survived"


# --- another upstream ---------------------------------------------------------------------

UPSTREAMS = {
    # stack: (openaiBaseUrl, expected (host, port, path prefix, TLS))
    "upstream-tls": (
        "https://llm.internal.example:8443/openai/v1",
        ("llm.internal.example", 8443, "/openai/v1", True),
    ),
    "upstream-http": ("http://10.213.0.2:8400/v1", ("10.213.0.2", 8400, None, False)),
}


@pytest.mark.parametrize("stack", sorted(UPSTREAMS))
def test_another_upstream_is_translated_as_configured(
    workspace: Workspace, kube: Kube, kubeconfig: str, stack: str
) -> None:
    admin = require_admin()
    base_url, expected = UPSTREAMS[stack]
    namespace = _stack(workspace, kubeconfig, stack, {}, {"openaiBaseUrl": base_url})
    workspace.run("up", "--yes", "--skip-preview", "--stack", stack)

    agw_status.wait_conditions(
        f"AgentgatewayBackend {namespace}/{BACKEND}",
        lambda: agw_status.object_conditions(kube, "AgentgatewayBackend", BACKEND, namespace),
        {"Accepted": "True"},
    )
    backend, _ = admin.wait_for(
        f"backend {namespace}/{BACKEND}", lambda snap: snap.backend(namespace, BACKEND)
    )
    assert (backend.host, backend.port, backend.path_prefix, backend.tls) == expected
    if backend.tls:
        assert backend.tls_sni == expected[0]
    assert (backend.provider, backend.model) == ("openai", "gpt-4o-mini")
    assert backend.key_matches(FAKE_KEY)
    assert admin.snapshot().serves_key((namespace, GATEWAY), (namespace, BACKEND), FAKE_KEY)
    _destroy(workspace, kube, stack, namespace)


# --- pulumi up waits for Programmed --------------------------------------------------------

LATE_CLASS = "llm-gateway-e2e-late"
WAIT_STACK = "await-programmed"


def _gateway_class(name: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{GW_GROUP}/{GW_VERSION}",
        "kind": "GatewayClass",
        "metadata": {"name": name},
        "spec": {"controllerName": agw_status.CONTROLLER_NAME},
    }


def test_up_waits_until_the_gateway_is_programmed(
    workspace: Workspace, kube: Kube, kubeconfig: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """skipAwait off: `pulumi up` holds on the Gateway until the controller programs it.

    The Gateway names a class that does not exist yet, so no controller touches it; the up
    must still be running once the Gateway is stored. Creating the class (served by
    agentgateway) lets the controller program the Gateway, and only then the up finishes.
    """
    require_admin()
    assert agw_status.gateway_class(kube, LATE_CLASS) is None, "leftover GatewayClass"
    namespace = _stack(
        workspace, kubeconfig, WAIT_STACK, {"gateway": {"className": LATE_CLASS}}, {}
    )
    workspace.run("config", "set", "--stack", WAIT_STACK, "skipAwait", "false")

    done: list[Result] = []
    up = threading.Thread(
        target=lambda: done.append(
            workspace.run("up", "--yes", "--skip-preview", "--stack", WAIT_STACK, check=False)
        ),
        daemon=True,
    )
    up.start()
    try:
        gateway = agw_status.eventually(
            "Gateway stored", lambda: kube.get("Gateway", GATEWAY, namespace), bool, timeout=120
        )
        assert gateway is not None
        assert gateway["metadata"]["annotations"]["pulumi.com/waitFor"] == "condition=Programmed"
        time.sleep(5)
        assert up.is_alive(), "pulumi up finished before any controller programmed the Gateway"
        # The API server defaults both conditions to Unknown ("Waiting for controller").
        programmed = agw_status.object_conditions(kube, "Gateway", GATEWAY, namespace)
        assert not programmed["Programmed"].true, programmed
    finally:
        # Also on failure: with the class in place the up can finish instead of timing out.
        kube.custom.create_cluster_custom_object(
            GW_GROUP, GW_VERSION, "gatewayclasses", _gateway_class(LATE_CLASS)
        )
        class_created = time.monotonic()
        up.join(timeout=180)
    assert not up.is_alive(), "pulumi up still waiting 180 s after the class appeared"
    waited = time.monotonic() - class_created
    (result,) = done
    assert result.code == 0, result.output[-4000:]
    conditions = agw_status.object_conditions(kube, "Gateway", GATEWAY, namespace)
    assert conditions["Programmed"].true, conditions
    with capsys.disabled():
        print(f"\n[e2e] Programmed: pulumi up finished {waited:.1f}s after the class appeared")
    _destroy(workspace, kube, WAIT_STACK, namespace)
    kube.custom.delete_cluster_custom_object(GW_GROUP, GW_VERSION, "gatewayclasses", LATE_CLASS)


# --- bad objects ---------------------------------------------------------------------------


def test_config_refuses_an_empty_key_before_up(
    workspace: Workspace, kube: Kube, kubeconfig: str
) -> None:
    """An empty key would give the backend a Secret whose entry the controller cannot use
    ("missing apiKey value"); the package refuses it before declaring anything."""
    stack = "empty-key"
    namespace = f"llm-gateway-{stack}"
    write_stack_file(workspace, stack, namespace, {})
    init_stack(workspace, stack, kubeconfig, key=None)
    workspace.run("config", "set", "--secret", "--stack", stack, "openaiKey", "")
    result = workspace.run("up", "--yes", "--skip-preview", "--stack", stack, check=False)
    assert result.code != 0
    assert "llm-gateway:openaiKey: is empty" in result.output, result.output[-4000:]
    assert kube.get("Namespace", namespace) is None
    workspace.run("stack", "rm", "--yes", "--force", "--stack", stack)


BAD_NS = "llm-gateway-e2e-bad-objects"


@pytest.fixture(scope="module")
def bad_namespace(kube: Kube) -> Iterator[str]:
    """A namespace with a Gateway of class agentgateway, written past the package."""
    require_admin()
    kube.core.create_namespace({"metadata": {"name": BAD_NS}})
    _create(kube, "gateways", _gateway())
    try:
        yield BAD_NS
    finally:
        kube.core.delete_namespace(BAD_NS)
        assert kube.wait_gone("Namespace", BAD_NS, timeout=90)


def _create(kube: Kube, plural: str, body: dict[str, Any]) -> None:
    group = body["apiVersion"].split("/")[0]
    version = body["apiVersion"].split("/")[1]
    kube.custom.create_namespaced_custom_object(group, version, BAD_NS, plural, body)


def _api(shape: CustomObject[Any]) -> dict[str, Any]:
    """A package shape as the API server takes it (the shapes spell specs as the CRDs do)."""
    return {
        "apiVersion": shape["api_version"],
        "kind": shape["kind"],
        "metadata": dict(shape["metadata"]),
        "spec": shape["spec"],
    }


def _gateway() -> dict[str, Any]:
    return _api(
        gateway_shape.gateway(
            GATEWAY, BAD_NS, class_name=agw_status.GATEWAY_CLASS, port=80, skip_await=False
        )
    )


def _backend(name: str, secret: str) -> dict[str, Any]:
    """The backend our package emits for dev, pointed at `secret`."""
    return _api(
        agentgateway_backend(
            name,
            BAD_NS,
            secret_name=secret,
            upstream_url=OPENAI_URL,
            model="gpt-4o-mini",
            skip_await=False,
        )
    )


def _route(name: str, backend: str) -> dict[str, Any]:
    return _api(
        http_route(
            name,
            BAD_NS,
            gateway_name=GATEWAY,
            backend_name=backend,
            path_prefix=f"/{name}",
            skip_await=False,
        )
    )


BAD_SECRETS = {
    # backend: (Secret data or None for no Secret, expected message fragment)
    "wrong-entry": ({"Authorization": "Bearer x"}, f"missing {KEY_FIELD} value"),
    "empty-entry": ({KEY_FIELD: ""}, f"missing {KEY_FIELD} value"),
    "no-secret": (None, "not found"),
}


@pytest.mark.parametrize("backend", sorted(BAD_SECRETS))
def test_controller_reports_a_backend_whose_secret_lacks_the_key(
    kube: Kube, bad_namespace: str, backend: str
) -> None:
    """Not reachable through config (the package writes the Secret and its `apiKey` entry
    next to the backend, and refuses an empty key): only an out-of-band edit gets here."""
    data, fragment = BAD_SECRETS[backend]
    secret = f"{backend}-key"
    if data is not None:
        kube.core.create_namespaced_secret(
            bad_namespace, {"metadata": {"name": secret}, "stringData": data}
        )
    _create(kube, "agentgatewaybackends", _backend(backend, secret))
    _create(kube, "httproutes", _route(backend, backend))

    conditions = agw_status.wait_conditions(
        f"AgentgatewayBackend {backend} refused",
        lambda: agw_status.object_conditions(kube, "AgentgatewayBackend", backend, bad_namespace),
        {"Accepted": "False"},
    )
    accepted = conditions["Accepted"]
    assert accepted.reason == "TranslationError", accepted
    assert fragment in accepted.message, accepted
    # The refused backend is not translated, so nothing is served for it...
    admin = require_admin()
    snapshot = admin.snapshot()
    assert snapshot.backend(bad_namespace, backend) is None
    assert f"backend/{bad_namespace}/{backend}" not in snapshot.served(bad_namespace, GATEWAY)
    # ...while its route is Accepted, ResolvedRefs and served: only the backend's own
    # Accepted condition tells (the Gateway's Programmed does not either).
    agw_status.wait_conditions(
        f"HTTPRoute {backend} parent",
        lambda: agw_status.parent_conditions(kube, backend, bad_namespace, GATEWAY),
        {"Accepted": "True", "ResolvedRefs": "True"},
    )
    routes, _ = admin.wait_for(
        f"route {backend} served", lambda snap: snap.routes(bad_namespace, backend)
    )
    assert [r.backends for r in routes] == [(f"{bad_namespace}/{backend}",)]


def test_controller_reports_a_route_to_a_missing_backend(kube: Kube, bad_namespace: str) -> None:
    """Not reachable through config: the package declares the route only next to its
    backend (both come and go with agentgateway.enabled; the kill switch drops the route)."""
    _create(kube, "httproutes", _route("dangling", "absent"))
    conditions = agw_status.wait_conditions(
        "HTTPRoute dangling: ResolvedRefs False",
        lambda: agw_status.parent_conditions(kube, "dangling", bad_namespace, GATEWAY),
        {"ResolvedRefs": "False"},
    )
    assert conditions["ResolvedRefs"].reason == "BackendNotFound", conditions
