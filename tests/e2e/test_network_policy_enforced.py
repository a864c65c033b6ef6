"""The emitted NetworkPolicies on live traffic, enforced on the local node by kube-router.

Probe pods (tests/e2e/e2e_pods.py) call from where real callers sit: a namespace labelled
`llm-gateway/client=true`, an unlabelled one, the scraper's namespace; and the proxy's own
pods call out. Each refusal is bounded (pod_probe.ATTEMPT_TIMEOUT_S per attempt) and paired
with an allowed call of the same kind, so a probe that cannot connect at all fails the test.
The node's fake upstream records every call that reaches it. Tests run in file order on one
stack, `netpol`, with the default `allowedClients` until the podLabels scenario.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from kubernetes import client

from components.config_model import CLIENT_LABEL
from tests.e2e import pod_probe
from tests.e2e.e2e_kube import Kube
from tests.e2e.e2e_node import (
    chats_since,
    proxy_pods,
    proxy_service_url,
    up_node_stack,
    upstream_calls,
)
from tests.e2e.e2e_pods import ProbePods
from tests.e2e.e2e_pulumi import Workspace, run_smoke_output

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("node")]

STACK = "netpol"
NS = "llm-gateway-netpol"
CLIENTS = "netpol-clients"  # labelled llm-gateway/client=true
STRANGERS = "netpol-strangers"  # no label
MONITORING = "monitoring"  # the default metricsScraper's namespace
SCRAPER_LABELS = {"app.kubernetes.io/name": "prometheus"}
TARGET_PORT = 8081  # a plain HTTP server in the strangers' namespace, behind a Service
CHAT = json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]})
# A refusal must come within one attempt's timeout (kube-router REJECTs: it comes at once).
REFUSED_BOUND_S = pod_probe.ATTEMPT_TIMEOUT_S + 0.5
# How long a label change may take to be enforced before it counts as broken.
ENFORCEMENT_BOUND_S = 30.0


@pytest.fixture(scope="module")
def probes(kube: Kube, kubeconfig: str, node: dict[str, str]) -> Iterator[ProbePods]:
    """The probe pods, started before the stack so they are ready when it is."""
    assert os.environ.get("LLM_GATEWAY_NODE_NETPOL") == "kube-router", (
        "the node enforces no NetworkPolicy: scripts/e2e/cluster.sh up starts kube-router"
    )
    pods = ProbePods(kube, kubeconfig, node["LLM_GATEWAY_NODE_PROXY_IMAGE"])
    try:
        pods.namespace(CLIENTS, {CLIENT_LABEL: "true"})
        pods.namespace(STRANGERS)
        pods.namespace(MONITORING)
        pods.pod(CLIENTS, "client")
        pods.pod(CLIENTS, "chat", {"app": "chat"})
        serve = ["python", "-m", "http.server", str(TARGET_PORT)]
        pods.pod(STRANGERS, "stranger", {"app": "target"}, command=serve, port=TARGET_PORT)
        # The client label on the pod does not make a pod of another namespace a client.
        pods.pod(STRANGERS, "impostor", {CLIENT_LABEL: "true"})
        pods.pod(MONITORING, "prometheus", SCRAPER_LABELS)
        pods.pod(MONITORING, "not-prometheus")
        pods.service(STRANGERS, "probe-target", {"app": "target"}, TARGET_PORT)
        pods.wait_running(
            [
                (CLIENTS, "client"), (CLIENTS, "chat"), (STRANGERS, "stranger"),
                (STRANGERS, "impostor"), (MONITORING, "prometheus"),
                (MONITORING, "not-prometheus"),
            ]
        )  # fmt: skip
        yield pods
    finally:
        pods.cleanup()


def chat_url(kube: Kube) -> str:
    return f"{proxy_service_url(kube, NS)}/chat/completions"


def readyz_url(kube: Kube) -> str:
    """The proxy's /readyz through its Service: the API port, without an upstream call."""
    return proxy_service_url(kube, NS).removesuffix("/v1") + "/readyz"


def assert_refused(result: dict[str, Any], what: str) -> None:
    """No HTTP reply (or no TCP connection) at all, and within the bound."""
    assert "status" not in result, (what, result)
    assert result.get("connected") is not True, (what, result)
    assert result["seconds"] <= REFUSED_BOUND_S, (what, result)


def test_up_emits_the_proxy_policy(
    workspace: Workspace, kube: Kube, kubeconfig: str, node: dict[str, str], probes: ProbePods
) -> None:
    up_node_stack(workspace, STACK, NS, kubeconfig, node)
    policies: Any = client.NetworkingV1Api(kube.api).list_namespaced_network_policy(NS)
    assert [policy.metadata.name for policy in policies.items] == ["llm-proxy"]


def test_a_labelled_namespace_is_served_and_an_unlabelled_one_refused_at_the_network(
    kube: Kube, node: dict[str, str], probes: ProbePods
) -> None:
    began = time.time()
    served = probes.probe(CLIENTS, "client", "http", chat_url(kube), CHAT)
    assert served["status"] == 200, served
    assert json.loads(served["body"])["choices"][0]["message"]["content"] == "pong"
    (call,) = chats_since(node, began)
    assert call["client"] in {pod.status.pod_ip for pod in proxy_pods(kube, NS)}

    began = time.time()
    pod_ip = proxy_pods(kube, NS)[0].status.pod_ip
    for pod in ("stranger", "impostor"):
        assert_refused(probes.probe(STRANGERS, pod, "http", chat_url(kube), CHAT), pod)
        # Not through the Service either: straight at a pod, on either port.
        assert_refused(probes.probe(STRANGERS, pod, "tcp", pod_ip, "8080"), pod)
        assert_refused(probes.probe(STRANGERS, pod, "tcp", pod_ip, "9090"), pod)
    time.sleep(1)  # a call that got through would be recorded by now
    assert upstream_calls(node["LLM_GATEWAY_NODE_UPSTREAM_RECORD"], began) == []


def test_labelling_a_namespace_admits_it_without_an_up_and_unlabelling_shuts_it_out(
    kube: Kube, probes: ProbePods
) -> None:
    url = readyz_url(kube)
    loop = probes.probe_loop(STRANGERS, "stranger", "until", "ok", url, str(ENFORCEMENT_BOUND_S))
    labelled = probes.label_namespace(STRANGERS, CLIENT_LABEL, "true")
    admitted = ProbePods.loop_result(loop, ENFORCEMENT_BOUND_S + 30)
    assert admitted["reached"], f"still refused {ENFORCEMENT_BOUND_S}s after labelling: {admitted}"
    assert admitted["attempts"] > 1, "admitted before the label: was it ever refused?"

    loop = probes.probe_loop(
        STRANGERS, "stranger", "until", "refused", url, str(ENFORCEMENT_BOUND_S)
    )
    unlabelled = probes.label_namespace(STRANGERS, CLIENT_LABEL, None)
    refused = ProbePods.loop_result(loop, ENFORCEMENT_BOUND_S + 30)
    assert refused["reached"], f"still served {ENFORCEMENT_BOUND_S}s after unlabelling: {refused}"
    assert refused["attempts"] > 1, "refused before the label was removed"
    print(
        f"\nenforcement: label → first 200 {admitted['last']['time'] - labelled:.2f}s "
        f"({admitted['attempts']} attempts); unlabel → first refusal "
        f"{refused['last']['time'] - unlabelled:.2f}s ({refused['attempts']} attempts)"
    )
    assert_refused(probes.probe(STRANGERS, "stranger", "http", url), "unlabelled again")


def set_allowed_clients(workspace: Workspace, clients: list[dict[str, Any]]) -> None:
    """Write `allowedClients` into the stack file, as a user edits it (a list of maps with
    label keys containing `/` is clumsy through `pulumi config set --path`)."""
    path = workspace.project / "stacks" / f"Pulumi.{STACK}.yaml"
    stack_file = yaml.safe_load(path.read_text())
    stack_file["config"]["llm-gateway:allowedClients"] = clients
    path.write_text(yaml.safe_dump(stack_file))


def test_allowed_clients_with_pod_labels_admit_only_those_pods(
    workspace: Workspace, kube: Kube, node: dict[str, str], probes: ProbePods
) -> None:
    set_allowed_clients(
        workspace, [{"namespaceLabels": {CLIENT_LABEL: "true"}, "podLabels": {"app": "chat"}}]
    )
    workspace.run("up", "--yes", "--skip-preview", "--stack", STACK)
    updated = time.time()
    url = readyz_url(kube)
    shut = probes.probe(CLIENTS, "client", "until", "refused", url, str(ENFORCEMENT_BOUND_S))
    assert shut["reached"], f"a pod without app=chat still served: {shut}"
    print(f"\npodLabels: unlabelled pod refused {shut['last']['time'] - updated:.2f}s after the up")

    began = time.time()
    served = probes.probe(CLIENTS, "chat", "http", chat_url(kube), CHAT)
    assert served["status"] == 200, served
    assert len(chats_since(node, began)) == 1
    began = time.time()
    assert_refused(probes.probe(CLIENTS, "client", "http", chat_url(kube), CHAT), "client")
    time.sleep(1)
    assert chats_since(node, began) == []


def test_the_scraper_reaches_metrics_and_not_the_api(kube: Kube, probes: ProbePods) -> None:
    pod_ip = proxy_pods(kube, NS)[0].status.pod_ip
    metrics = f"http://{pod_ip}:9090/metrics"
    scraped = probes.probe(MONITORING, "prometheus", "http", metrics)
    assert scraped["status"] == 200, scraped
    assert "llm_proxy_" in scraped["body"]
    # The scraper cannot spend the key: not on the pod's API port, not through the Service.
    api = f"http://{pod_ip}:8080/v1/models"
    assert_refused(probes.probe(MONITORING, "prometheus", "http", api), "scraper → 8080")
    assert_refused(probes.probe(MONITORING, "prometheus", "http", chat_url(kube), CHAT), "svc")
    # Only the scraper's pods: another pod of its namespace, or a client, gets no metrics.
    assert_refused(probes.probe(MONITORING, "not-prometheus", "http", metrics), "other pod")
    assert_refused(probes.probe(CLIENTS, "chat", "http", metrics), "client → 9090")


def test_the_proxy_pods_reach_dns_and_the_upstream_and_nothing_else(
    kube: Kube, node: dict[str, str], probes: ProbePods
) -> None:
    proxy = proxy_pods(kube, NS)[0].metadata.name
    service = kube.core.read_namespaced_service("llm-proxy", NS).spec.cluster_ip
    found = probes.probe(NS, proxy, "resolve", f"llm-proxy.{NS}.svc.cluster.local")
    assert found["addresses"] == [service], found
    upstream = urlsplit(node["LLM_GATEWAY_NODE_UPSTREAM_URL"])
    healthy = probes.probe(NS, proxy, "http", f"http://{upstream.netloc}/healthz")
    assert healthy["status"] == 200, healthy

    # Another in-cluster Service: reachable from a pod without a policy, not from the proxy.
    target = kube.core.read_namespaced_service("probe-target", STRANGERS).spec.cluster_ip
    assert probes.probe(CLIENTS, "client", "tcp", target, str(TARGET_PORT))["connected"]
    assert_refused(probes.probe(NS, proxy, "tcp", target, str(TARGET_PORT)), "proxy → svc")
    # The API server is the one in-cluster exception: with keySource api (the default) the
    # proxy watches its key Secret there, and its egress admits proxy.apiServerPorts for it.
    api_server = kube.core.read_namespaced_service("kubernetes", "default").spec.cluster_ip
    assert probes.probe(NS, proxy, "tcp", api_server, "443")["connected"], "proxy → API server"


def test_the_smoke_output_and_the_smoke_job_pass_with_enforcement_on(
    workspace: Workspace, kube: Kube, probes: ProbePods
) -> None:
    done = run_smoke_output(workspace, STACK)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    assert "ok: every proxy pod (1) serves key" in done.stdout
    # The same smoke client from the unlabelled namespace: one line, refused at the network.
    refused = probes.kubectl_run(
        STRANGERS, "refused-smoke",
        ["python", "-m", "proxy", "smoke", "--timeout", "5", "--url",
         f"http://llm-proxy.{NS}.svc.cluster.local/v1"],
    )  # fmt: skip
    print(f"\nfrom {STRANGERS}: {refused.stdout.strip()}")
    assert refused.returncode != 0
    assert "smoke failed: cannot connect to" in refused.stdout, refused.stdout + refused.stderr

    workspace.run("config", "set", "--path", "--stack", STACK, "smokeTest.onUp", "true")
    workspace.run("up", "--yes", "--skip-preview", "--stack", STACK)
    jobs = kube.batch.list_namespaced_job(NS, label_selector="app.kubernetes.io/name=llm-smoke")
    (job,) = jobs.items
    assert job.status.succeeded == 1


def test_destroy(workspace: Workspace, kube: Kube) -> None:
    workspace.run("destroy", "--yes", "--skip-preview", "--stack", STACK)
    assert kube.wait_gone("Namespace", NS, timeout=120)
