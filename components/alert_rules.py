"""The alerts, as Prometheus rule groups: the one source for the PrometheusRule the program
declares and for the plain rules file `promtool` and a Prometheus without the operator read
(`python -m components.print_rules NAMESPACE [--kill-switch]`).

Every expression is scoped to the gateway's namespace (the `namespace` target label the
Prometheus Operator, and any kubernetes_sd pod scrape config, sets) and aggregated by it,
so each alert carries `namespace`. The thresholds and `for:` durations are explained next
to each rule; tests/monitoring/*.promtest.yaml hold their `promtool test rules` cases.
"""

from typing import Any

import yaml

GROUP = "llm-gateway"

AlertRule = dict[str, Any]  # alert, expr, for, labels, annotations (the CRD's field names)

# A pod's kubelet swaps a rotated Secret at its next pod sync (syncFrequency 1 min plus
# jitter; the README's "Rotation latency" has the measured times). Pods disagreeing for
# 5 min is not a rotation in progress any more.
FINGERPRINT_MISMATCH_FOR = "5m"


def _alert(
    name: str,
    expr: str,
    duration: str,
    severity: str,
    summary: str,
    runbook: str,
    extra_labels: dict[str, str] | None = None,
) -> AlertRule:
    rule: AlertRule = {"alert": name, "expr": expr}
    if duration != "0s":
        rule["for"] = duration
    rule["labels"] = {"severity": severity, **(extra_labels or {})}
    rule["annotations"] = {"summary": summary, "runbook": runbook}
    return rule


def alert_rules(namespace: str, *, kill_switch: bool = False) -> list[AlertRule]:
    """The alerts for the gateway in `namespace`; the kill-switch one only while it is on."""
    ns = f'namespace="{namespace}"'
    upstream = f"llm_proxy_upstream_requests_total{{{ns}}}"
    rejected = f'llm_proxy_upstream_requests_total{{{ns},status=~"401|403"}}'
    failed = (
        f'llm_proxy_upstream_requests_total{{{ns},status=~"5..|timeout|unreachable|bad_response"}}'
    )
    by_ns = "sum by (namespace)"
    rules = [
        _alert(
            "LlmGatewayUpstreamRejectsKey",
            # Over half of the upstream's answers in 2 min are 401/403 (a revoked, mistyped
            # or not-yet-valid key fails every call; a model the org may not use fails a
            # few), and at least 3 of them, so one stray 403 in a quiet hour pages no one.
            f"({by_ns} (rate({rejected}[2m])) / {by_ns} (rate({upstream}[2m])) > 0.5)"
            f" and {by_ns} (increase({rejected}[2m])) >= 3",
            "1m",
            "critical",
            "The upstream rejects the gateway's key: {{ $value | humanizePercentage }} of "
            "upstream calls in {{ $labels.namespace }} get 401/403.",
            "A rotation to a bad key, or the key was revoked. Compare `pulumi stack output "
            "keyFingerprint` with llm_proxy_key_info; set a valid key with `pulumi config set "
            "--secret openaiKey` and `pulumi up` (or roll back to the previous one).",
        ),
        _alert(
            "LlmGatewayNoUsableKey",
            # The proxy drops a key only after two failed reads in a row; 1 min of that is
            # a deleted, emptied or unreadable Secret, not a kubelet swap.
            f"max by (namespace, pod) (llm_proxy_key_loaded{{{ns}}}) == 0",
            "1m",
            "critical",
            "Proxy pod {{ $labels.pod }} has no usable key and answers 503.",
            f"Check that the Secret named by `pulumi stack output secretName` in {namespace} "
            "has a non-empty `apiKey`; `pulumi up` restores it. The pod's log has a "
            "key_missing line with the reason.",
        ),
        _alert(
            "LlmGatewayKeyFingerprintMismatch",
            f"count by (namespace) (count by (namespace, fingerprint) "
            f"(llm_proxy_key_info{{{ns}}})) > 1",
            FINGERPRINT_MISMATCH_FOR,
            "warning",
            "Proxy pods in {{ $labels.namespace }} serve {{ $value }} different keys for "
            f"longer than a rotation takes ({FINGERPRINT_MISMATCH_FOR}).",
            "Some pods did not pick up the rotated Secret. `count by (pod, fingerprint) "
            "(llm_proxy_key_info)` names them; compare with `pulumi stack output "
            "keyFingerprint`, then delete the stale pods. Keep the old key valid upstream "
            "until every pod serves the new one.",
        ),
        _alert(
            "LlmGatewayUpstreamErrors",
            f"{by_ns} (rate({failed}[5m])) / {by_ns} (rate({upstream}[5m])) > 0.05",
            "5m",
            "warning",
            "{{ $value | humanizePercentage }} of upstream calls in {{ $labels.namespace }} "
            "fail (5xx, timeout, unreachable).",
            "Check the provider's status page and llm_proxy_upstream_requests_total by "
            "status: timeouts point at proxy.readTimeout or the egress path, `unreachable` at "
            "DNS, the NetworkPolicy egress ports or proxy.egressProxy.",
        ),
        _alert(
            "LlmGatewayHighLatency",
            "histogram_quantile(0.95, sum by (namespace, le) (rate("
            f'gen_ai_server_request_duration_seconds_bucket{{{ns},error_type=""}}[5m]))) > 30',
            "10m",
            "warning",
            "p95 of successful GenAI calls in {{ $labels.namespace }} is "
            "{{ $value | humanizeDuration }}.",
            "Compare with the time to first token: a slow first token is the provider "
            "(or a saturated model); a fast one means long generations. Check "
            "llm_proxy_in_flight against proxy.maxInFlight.",
        ),
        _alert(
            "LlmGatewaySlowFirstToken",
            "histogram_quantile(0.95, sum by (namespace, le) (rate("
            f"gen_ai_server_time_to_first_token_seconds_bucket{{{ns}}}[5m]))) > 5",
            "10m",
            "warning",
            "p95 time to first token of streams in {{ $labels.namespace }} is "
            "{{ $value | humanizeDuration }}.",
            "Usually the provider's queueing: check its status page and the model asked for. "
            "If only one pod is slow, look at its CPU throttling (proxy.resources.limits.cpu).",
        ),
        _alert(
            "LlmGatewayOverloaded",
            f'{by_ns} (rate(llm_proxy_refusals_total{{{ns},code="proxy_overloaded"}}[5m]))'
            f" / {by_ns} (rate(llm_proxy_requests_total{{{ns}}}[5m])) > 0.01",
            "5m",
            "warning",
            "{{ $value | humanizePercentage }} of calls in {{ $labels.namespace }} are shed "
            "with 503 (proxy at maxInFlight or its body-buffer limit).",
            "Raise proxy.replicas (or proxy.maxInFlight if CPU and memory allow), then "
            "`pulumi up`; find who sends the burst in the access log.",
        ),
        _alert(
            "LlmGatewayClientBudgetExhausted",
            # Per-client identity's series (llm_proxy_client_requests_total{client,status}):
            # its budget refusals, and the upstream's rate limits passed through to that app.
            "sum by (namespace, client) (rate(llm_proxy_client_requests_total"
            f'{{{ns},status="429"}}[5m])) > 0',
            "15m",
            "warning",
            "Client {{ $labels.client }} in {{ $labels.namespace }} has been getting 429 "
            "for 15 min (its budget is used up, or the upstream rate-limits the key).",
            "Compare the client's budget in the stack config with its usage "
            "(llm_proxy_client_tokens_total); raise the budget or ask the team why it spends "
            "more. If every client gets 429, it is the upstream's limit for the key: check the "
            "provider's limits.",
        ),
    ]
    if kill_switch:
        rules.append(
            _alert(
                "LlmGatewayKillSwitchOn",
                "vector(1)",
                "0s",
                "info",
                f"The kill switch of the gateway in {namespace} is on: no LLM traffic.",
                "Intended during an incident. `pulumi config set killSwitch false` and "
                "`pulumi up` restore the route and the proxy pods.",
                {"namespace": namespace},
            )
        )
    return rules


def rule_groups(namespace: str, *, kill_switch: bool = False) -> list[dict[str, Any]]:
    """The `groups` of a rules file, which is also a PrometheusRule's `spec.groups`."""
    return [{"name": GROUP, "rules": alert_rules(namespace, kill_switch=kill_switch)}]


def rules_file(namespace: str, *, kill_switch: bool = False) -> str:
    """A Prometheus rules file (what `promtool check rules` and `rule_files:` read)."""
    groups = rule_groups(namespace, kill_switch=kill_switch)
    return yaml.safe_dump({"groups": groups}, sort_keys=False, width=100)
