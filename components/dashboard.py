"""The Grafana dashboard (JSON model, schemaVersion 39) for one gateway namespace.

Built in code so every panel's query is a PromQL string the tests can parse (promtool)
and run against a real Prometheus (e2e). GenAI panels read the OTel names the proxy
exports (gen_ai_*), so the same panels work on any exporter that follows the conventions;
key panels read llm_proxy_key_info / llm_proxy_key_loaded / llm_proxy_upstream_requests.
"""

from typing import Any

UID = "llm-gateway"
_NS = 'namespace="$namespace"'


def panel_queries() -> dict[str, list[tuple[str, str]]]:
    """Panel title → (legend, PromQL) pairs; `$namespace` is the dashboard variable."""
    rate = "[$__rate_interval]"
    genai_ok = f'{_NS},error_type=""'
    return {
        "Calls per second by status": [
            ("{{status}}", f"sum by (status) (rate(llm_proxy_requests_total{{{_NS}}}{rate}))"),
        ],
        "Upstream answers by status": [
            (
                "{{status}}",
                f"sum by (status) (rate(llm_proxy_upstream_requests_total{{{_NS}}}{rate}))",
            ),
        ],
        "Upstream rejects the key (share of 401/403)": [
            (
                "rejected",
                f'sum(rate(llm_proxy_upstream_requests_total{{{_NS},status=~"401|403"}}{rate}))'
                f" / sum(rate(llm_proxy_upstream_requests_total{{{_NS}}}{rate}))",
            ),
        ],
        "Request duration (gen_ai.server.request.duration)": [
            (
                f"p{q} {{{{gen_ai_operation_name}}}}",
                f"histogram_quantile(0.{q}, sum by (le, gen_ai_operation_name) (rate("
                f"gen_ai_server_request_duration_seconds_bucket{{{genai_ok}}}{rate})))",
            )
            for q in ("50", "95")
        ],
        "Time to first token (gen_ai.server.time_to_first_token)": [
            (
                f"p{q}",
                f"histogram_quantile(0.{q}, sum by (le) (rate("
                f"gen_ai_server_time_to_first_token_seconds_bucket{{{_NS}}}{rate})))",
            )
            for q in ("50", "95")
        ],
        "Tokens per second (gen_ai.client.token.usage)": [
            (
                "{{gen_ai_request_model}} {{gen_ai_token_type}}",
                "sum by (gen_ai_request_model, gen_ai_token_type) "
                f"(rate(gen_ai_client_token_usage_sum{{{_NS}}}{rate}))",
            ),
        ],
        "Errors by type (error.type)": [
            (
                "{{error_type}}",
                "sum by (error_type) (rate("
                f'gen_ai_server_request_duration_seconds_count{{{_NS},error_type!=""}}{rate}))',
            ),
        ],
        "Refused by the proxy": [
            ("{{code}}", f"sum by (code) (rate(llm_proxy_refusals_total{{{_NS}}}{rate}))"),
        ],
        "Calls in flight": [
            ("{{pod}}", f"sum by (pod) (llm_proxy_in_flight{{{_NS}}})"),
        ],
        "Served key fingerprint per pod": [
            ("{{pod}} {{fingerprint}}", f"max by (pod, fingerprint) (llm_proxy_key_info{{{_NS}}})"),
        ],
        "Pods without a usable key": [
            ("no key", f"count(llm_proxy_key_loaded{{{_NS}}} == 0) or vector(0)"),
        ],
    }


def _panel(index: int, title: str, queries: list[tuple[str, str]]) -> dict[str, Any]:
    unit = "short"
    if "duration" in title or "first token" in title:
        unit = "s"
    elif "share" in title:
        unit = "percentunit"
    return {
        "id": index + 1,
        "type": "timeseries",
        "title": title,
        "datasource": {"type": "prometheus", "uid": "${datasource}"},
        "gridPos": {"h": 8, "w": 12, "x": 12 * (index % 2), "y": 8 * (index // 2)},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "targets": [
            {
                "refId": chr(ord("A") + n),
                "datasource": {"type": "prometheus", "uid": "${datasource}"},
                "expr": expr,
                "legendFormat": legend,
            }
            for n, (legend, expr) in enumerate(queries)
        ],
    }


def dashboard(namespace: str) -> dict[str, Any]:
    """The dashboard, its namespace variable defaulting to the gateway's."""
    panels = [_panel(i, title, q) for i, (title, q) in enumerate(panel_queries().items())]
    return {
        "uid": UID,
        "title": "LLM gateway",
        "tags": ["llm-gateway", "gen_ai"],
        "schemaVersion": 39,
        "editable": True,
        "time": {"from": "now-1h", "to": "now"},
        "refresh": "30s",
        "templating": {
            "list": [
                {"name": "datasource", "type": "datasource", "query": "prometheus"},
                {
                    "name": "namespace",
                    "type": "query",
                    "datasource": {"type": "prometheus", "uid": "${datasource}"},
                    "query": "label_values(llm_proxy_key_loaded, namespace)",
                    "current": {"text": namespace, "value": namespace},
                },
            ]
        },
        "panels": panels,
    }
