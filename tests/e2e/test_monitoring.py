"""Monitoring on the real node: a real Prometheus scrapes the proxy pods the way
the stack's PodMonitor says and evaluates the stack's PrometheusRule (tests/e2e/
node_prometheus.py says how faithful that is). A normal rotation leaves the
fingerprint-mismatch alert silent; a rotation to a key the fake upstream rejects fires the
key-rejected alert, and rotating back resolves it. Tests run in file order on stack `mon`.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from components import dashboard
from proxy.fingerprint import key_fingerprint
from tests.e2e.e2e_kube import Kube
from tests.e2e.e2e_node import proxy_pods, proxy_service_url, up_node_stack
from tests.e2e.e2e_pulumi import FAKE_KEY, ROTATED_KEY, Workspace
from tests.e2e.steady_load import SteadyLoad
from tests.support.node_prometheus import GROUP, VERSION, NodePrometheus, start_prometheus

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("node")]

STACK = "mon"
NS = "llm-gateway-mon"
REPLICAS = 2
SCRAPE = "5s"
REJECTED_KEY = "sk-test-FAKEKEY-e2e-monitoring-rejected-998877"
REJECTED = "LlmGatewayUpstreamRejectsKey"
MISMATCH = "LlmGatewayKeyFingerprintMismatch"
# Bounds, from `pulumi up` returning: the kubelet's Secret sync (measured 66-80 s), then the
# rule's 2 min window reaching a 50 % share (~1 min at a steady rate) and its `for: 1m`, plus
# scrape and evaluation intervals (5 s each here).
FIRING_BOUND_S = 330
RESOLVED_BOUND_S = 240
ROTATION_BOUND_S = 180


@pytest.fixture(scope="module")
def prometheus(
    workspace: Workspace,
    kube: Kube,
    kubeconfig: str,
    node: dict[str, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[NodePrometheus]:
    """The stack up with monitoring on, and Prometheus configured from what it declared.
    The node's fake upstream accepts the first and the rotated key only."""
    workspace.forbidden.append(REJECTED_KEY)
    accept = Path(node["LLM_GATEWAY_NODE_UPSTREAM_ACCEPT"])
    accept.write_text(f"{key_fingerprint(FAKE_KEY)}\n{key_fingerprint(ROTATED_KEY)}\n")
    try:
        up_node_stack(
            workspace,
            STACK,
            NS,
            kubeconfig,
            node,
            proxy={"replicas": REPLICAS},
            more={"monitoring": {"enabled": True, "scrapeInterval": SCRAPE}},
        )
        monitors = kube.custom.list_namespaced_custom_object(GROUP, VERSION, NS, "podmonitors")
        rules = kube.custom.list_namespaced_custom_object(GROUP, VERSION, NS, "prometheusrules")
        (rule,) = rules["items"]
        workdir = tmp_path_factory.mktemp("prometheus")
        started = start_prometheus(workdir, kube, monitors["items"], rule)
        try:
            yield started
        finally:
            started.stop()
    finally:
        accept.unlink(missing_ok=True)  # later scenarios expect every key accepted


def wait_for(what: str, seconds: float, probe: Any) -> tuple[Any, float]:
    """Poll `probe()` every second until it returns something truthy; (value, elapsed)."""
    began = time.monotonic()
    while True:
        value = probe()
        if value:
            return value, time.monotonic() - began
        assert time.monotonic() - began < seconds, f"{what}: not within {seconds} s"
        time.sleep(1)


def rotate(workspace: Workspace, key: str) -> float:
    """`pulumi config set --secret openaiKey` + `pulumi up`; the monotonic time it returned."""
    workspace.set_secret("openaiKey", key, STACK)
    workspace.run("up", "--yes", "--skip-preview", "--stack", STACK)
    return time.monotonic()


def served(prometheus: NodePrometheus) -> dict[str, str]:
    """Pod → fingerprint, as Prometheus last scraped them."""
    return {
        s["metric"]["pod"]: s["metric"]["fingerprint"]
        for s in prometheus.query(f'llm_proxy_key_info{{namespace="{NS}"}}')
    }


def test_prometheus_scrapes_every_proxy_pod_as_the_pod_monitor_says(
    prometheus: NodePrometheus, kube: Kube
) -> None:
    pods = {pod.metadata.name: pod.status.pod_ip for pod in proxy_pods(kube, NS)}
    assert len(pods) == REPLICAS

    def healthy() -> list[dict[str, Any]]:
        targets = [t for t in prometheus.active_targets() if t["labels"]["namespace"] == NS]
        return targets if [t["health"] for t in targets] == ["up"] * REPLICAS else []

    targets, _ = wait_for("both pods scraped", 60, healthy)
    for target in targets:
        labels = target["labels"]
        assert labels["job"] == f"{NS}/llm-gateway-proxy"
        assert labels["endpoint"] == "metrics"
        assert labels["container"] == "proxy"
        assert target["scrapeUrl"] == f"http://{pods[labels['pod']]}:9090/metrics"
    assert served(prometheus) == {name: key_fingerprint(FAKE_KEY) for name in pods}
    rules = prometheus.api("rules")["groups"]
    assert {r["name"] for g in rules for r in g["rules"]} >= {REJECTED, MISMATCH}


def test_a_normal_rotation_leaves_the_fingerprint_mismatch_alert_silent(
    prometheus: NodePrometheus, workspace: Workspace, kube: Kube
) -> None:
    new = key_fingerprint(ROTATED_KEY)
    load = SteadyLoad(proxy_service_url(kube, NS), rate=5, max_seconds=ROTATION_BOUND_S + 120)
    began = time.time()
    load.start()
    try:
        returned = rotate(workspace, ROTATED_KEY)
        wait_for(
            "every pod serves the new key (as scraped)",
            ROTATION_BOUND_S,
            lambda: set(served(prometheus).values()) == {new},
        )
        switched = time.monotonic() - returned
        time.sleep(15)  # a few more evaluations after the last switch
    finally:
        load.stop()
    end = time.time()
    mismatch_expr = f'count(count by (fingerprint) (llm_proxy_key_info{{namespace="{NS}"}})) > 1'
    mismatch = prometheus.query_range(mismatch_expr, began, end)
    mismatch_seconds = len(mismatch[0]["values"]) if mismatch else 0
    states = {
        s["metric"]["alertstate"]
        for s in prometheus.query_range(f'ALERTS{{alertname="{MISMATCH}"}}', began, end)
    }
    fingerprints = {
        s["metric"]["fingerprint"]
        for s in prometheus.query_range(f'llm_proxy_key_info{{namespace="{NS}"}}', began, end)
    }
    print(
        f"\nrotation: every pod scraped on the new key {switched:.0f} s after `pulumi up` "
        f"returned; pods disagreed for ~{mismatch_seconds} s; alert states seen: "
        f"{sorted(states) or 'none'}"
    )
    assert fingerprints == {key_fingerprint(FAKE_KEY), new}  # Prometheus saw the rotation
    assert "firing" not in states
    assert prometheus.alerts(MISMATCH) == []


def test_a_rejected_key_fires_the_alert_and_rotating_back_resolves_it(
    prometheus: NodePrometheus, workspace: Workspace, kube: Kube
) -> None:
    load = SteadyLoad(
        proxy_service_url(kube, NS), rate=5, max_seconds=FIRING_BOUND_S + RESOLVED_BOUND_S + 300
    )
    load.start()
    try:
        began = time.monotonic()
        returned = rotate(workspace, REJECTED_KEY)
        firing, to_firing = wait_for(
            f"{REJECTED} firing",
            FIRING_BOUND_S,
            lambda: [a for a in prometheus.alerts(REJECTED) if a["state"] == "firing"],
        )
        (alert,) = firing
        assert alert["labels"]["namespace"] == NS
        assert alert["labels"]["severity"] == "critical"
        assert "401/403" in alert["annotations"]["summary"]
        assert "pulumi config set --secret openaiKey" in alert["annotations"]["runbook"]
        up_seconds = returned - began
        returned_back = rotate(workspace, ROTATED_KEY)
        wait_for(
            f"{REJECTED} resolved", RESOLVED_BOUND_S, lambda: prometheus.alerts(REJECTED) == []
        )
        resolved_after = time.monotonic() - returned_back
    finally:
        outcomes = load.stop()
    print(
        f"\nrejected key: `pulumi up` took {up_seconds:.0f} s; {REJECTED} firing "
        f"{to_firing:.0f} s after it returned ({to_firing + up_seconds:.0f} s after it began); "
        f"resolved {resolved_after:.0f} s after the rotation back returned; "
        f"{len(outcomes)} calls, {sum(o.status == 401 for o in outcomes)} got 401"
    )
    assert any(o.status == 401 for o in outcomes)


def test_every_dashboard_query_returns_data_from_the_real_scrapes(
    prometheus: NodePrometheus,
) -> None:
    """The dashboard's series exist under the names and labels the proxy really exports."""
    empty = []
    for title, queries in dashboard.panel_queries().items():
        for _, expr in queries:
            concrete = expr.replace("$namespace", NS).replace("$__rate_interval", "10m")
            if not prometheus.query(concrete):
                empty.append(title)
    # Nothing was refused by the proxy itself in these scenarios (no overload, no allowlist
    # refusal): its panel is the one allowed to be empty.
    assert set(empty) <= {"Refused by the proxy"}, empty


def test_destroy_removes_the_monitoring_objects(workspace: Workspace, kube: Kube) -> None:
    workspace.run("destroy", "--yes", "--skip-preview", "--stack", STACK)
    assert kube.wait_gone("Namespace", NS, timeout=180)
    for plural in ("podmonitors", "prometheusrules"):
        found = kube.custom.list_cluster_custom_object(GROUP, VERSION, plural)["items"]
        assert [o for o in found if o["metadata"]["namespace"] == NS] == []
