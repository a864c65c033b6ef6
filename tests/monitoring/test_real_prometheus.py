"""A real Prometheus (Debian's 2.42) on loopback scrapes the real proxy through the scrape
job the e2e derives from the rendered PodMonitor, and evaluates the rendered rules.

The node's pod discovery is replaced by pod objects written here (kubernetes client models:
the proxy's pod at 127.0.0.1, plus a pod of another app and a finished proxy pod that the
operator's relabelling must drop). What this proves without a cluster: the relabelling
keeps exactly the monitored port, the target labels the alerts aggregate by are set, and
the rules find the proxy's real series (an alert goes pending on them).
"""

import io
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from kubernetes.client import (
    V1Container,
    V1ContainerPort,
    V1ObjectMeta,
    V1Pod,
    V1PodSpec,
    V1PodStatus,
)

from fakes.kubelet_secret_dir import KubeletSecretDir
from fakes.openai_upstream import start_fake_upstream
from proxy.fingerprint import key_fingerprint
from proxy.server import RunningProxy, start
from proxy.settings import Settings
from tests.support.net import free_port
from tests.support.node_prometheus import NodePrometheus, pod_targets, run_prometheus, scrape_jobs
from tests.support.proxy import FAKE_KEY, LoopThread
from tests.support.pulumi_render import render_stack

NAMESPACE = "llm-gateway"  # prod's


def pod(name: str, labels: dict[str, str], ports: dict[str, int], phase: str) -> V1Pod:
    return V1Pod(
        metadata=V1ObjectMeta(name=name, namespace=NAMESPACE, labels=labels),
        spec=V1PodSpec(
            node_name="node",
            containers=[
                V1Container(
                    name="proxy",
                    ports=[
                        V1ContainerPort(name=n, container_port=p, protocol="TCP")
                        for n, p in ports.items()
                    ],
                )
            ],
        ),
        status=V1PodStatus(pod_ip="127.0.0.1", phase=phase),
    )


@pytest.fixture
def running_proxy(tmp_path: Path) -> Iterator[tuple[RunningProxy, KubeletSecretDir]]:
    loop = LoopThread("real-prometheus-test")
    runner, _, upstream_port = loop.run(start_fake_upstream())
    secret = KubeletSecretDir(tmp_path / "secret")
    secret.write(FAKE_KEY)
    settings = Settings(
        host="127.0.0.1",
        port=0,
        metrics_port=free_port(),
        upstream=f"http://127.0.0.1:{upstream_port}/v1",
        key_file=secret.key_file,
        key_poll_interval=0.05,
        drain_timeout=1.0,
    )
    running = loop.run(start(settings, io.StringIO()))
    yield running, secret
    loop.run(running.stop())
    loop.run(runner.cleanup())


def wait_for(seconds: float, probe: Any) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if value := probe():
            return value
        time.sleep(0.5)
    raise AssertionError(f"not within {seconds} s")


@pytest.mark.timeout(90)
def test_prometheus_scrapes_the_monitored_port_and_the_rules_see_the_proxys_series(
    prometheus_binary: str,
    running_proxy: tuple[RunningProxy, KubeletSecretDir],
    tmp_path: Path,
) -> None:
    proxy, secret = running_proxy
    assert proxy.metrics_port is not None
    rendered = render_stack(
        "prod", overrides={"monitoring.enabled": True, "monitoring.scrapeInterval": "1s"}
    )
    monitor = next(
        m.inputs for m in rendered.of_kind("PodMonitor") if m.object_name == "llm-gateway-proxy"
    )
    groups = rendered.one("PrometheusRule").inputs["spec"]["groups"]
    ports = {"http": proxy.port, "metrics": proxy.metrics_port}
    pods = [
        pod("llm-proxy-a", {"app.kubernetes.io/name": "llm-proxy"}, ports, "Running"),
        pod("llm-proxy-done", {"app.kubernetes.io/name": "llm-proxy"}, ports, "Succeeded"),
        pod("other-app", {"app.kubernetes.io/name": "other"}, ports, "Running"),
    ]
    sd_file = tmp_path / "pods.json"
    sd_file.write_text(json.dumps(pod_targets(pods)))
    prometheus: NodePrometheus = run_prometheus(
        tmp_path / "prometheus", scrape_jobs(monitor, sd_file), groups, port=free_port()
    )
    try:
        (target,) = wait_for(
            20,
            lambda: [t for t in prometheus.active_targets() if t["health"] == "up"],
        )
        assert target["labels"] == {
            "container": "proxy",
            "endpoint": "metrics",
            "instance": f"127.0.0.1:{proxy.metrics_port}",
            "job": "llm-gateway/llm-gateway-proxy",
            "namespace": NAMESPACE,
            "pod": "llm-proxy-a",
        }
        assert len(prometheus.active_targets()) == 1  # the other app and the finished pod: dropped
        info = prometheus.query('llm_proxy_key_info{namespace="llm-gateway"}')
        assert [s["metric"]["fingerprint"] for s in info] == [key_fingerprint(FAKE_KEY)]
        # Upstream 401s and nothing else: the key-rejected rule matches (pending, `for: 1m`).
        for _ in range(3):
            httpx.post(
                proxy.base_url + "/chat/completions",
                json={"model": "gpt-4o-mini", "messages": []},
                headers={"x-fake-behaviour": "status:401"},
            )
        secret.write("")  # and the pod loses its key
        pending = wait_for(
            30,
            lambda: (
                {
                    a["labels"]["alertname"]
                    for a in prometheus.api("alerts")["alerts"]
                    if a["state"] == "pending"
                }
                >= {"LlmGatewayUpstreamRejectsKey", "LlmGatewayNoUsableKey"}
            ),
        )
        assert pending
        alerts = {a["labels"]["alertname"]: a for a in prometheus.api("alerts")["alerts"]}
        assert alerts["LlmGatewayNoUsableKey"]["labels"]["pod"] == "llm-proxy-a"
        assert alerts["LlmGatewayUpstreamRejectsKey"]["labels"]["namespace"] == NAMESPACE
        assert (
            "FAKEKEY"
            not in httpx.get(
                prometheus.url + "/api/v1/series", params={"match[]": '{namespace="llm-gateway"}'}
            ).text
        )
    finally:
        prometheus.stop()
