"""The alerts as Prometheus itself reads them: `promtool check rules` on the PrometheusRule
the program renders, and `promtool test rules` (every alert firing and not firing).

promtool comes from Debian's `prometheus` package (tests/monitoring/conftest.py).
"""

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from components import dashboard
from components.alert_rules import rule_groups
from tests.support.pulumi_render import REPO_ROOT, render_stack

HERE = Path(__file__).parent
CASES = {
    False: HERE / "alerts.promtest.yaml",
    True: HERE / "kill_switch.promtest.yaml",
}
NAMESPACE = "llm-gateway"  # the prod stack's, which the promtest series carry


@pytest.fixture(scope="module", params=[False, True], ids=["kill-switch-off", "kill-switch-on"])
def rendered_groups(request: pytest.FixtureRequest) -> tuple[bool, list[dict[str, Any]]]:
    """The PrometheusRule's groups as `pulumi up` of prod with monitoring on declares them."""
    kill_switch: bool = request.param
    overrides = {"monitoring.enabled": True, "killSwitch": kill_switch}
    rule = render_stack("prod", overrides=overrides).one("PrometheusRule")
    assert rule.inputs["metadata"]["namespace"] == NAMESPACE
    return kill_switch, rule.inputs["spec"]["groups"]


def rules_by_name(groups: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {rule["alert"]: rule for group in groups for rule in group["rules"]}


def run(promtool: str, *args: str, cwd: Path) -> str:
    done = subprocess.run(
        [promtool, *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    return output


def write_rules(groups: list[dict[str, Any]], folder: Path) -> Path:
    path = folder / "rules.yaml"
    path.write_text(yaml.safe_dump({"groups": groups}, sort_keys=False))
    return path


def test_rendered_rule_passes_promtool_check(
    promtool: str, rendered_groups: tuple[bool, list[dict[str, Any]]], tmp_path: Path
) -> None:
    kill_switch, groups = rendered_groups
    output = run(promtool, "check", "rules", str(write_rules(groups, tmp_path)), cwd=tmp_path)
    assert f"SUCCESS: {8 + kill_switch} rules found" in output


def test_promtool_unit_tests_pass(
    promtool: str, rendered_groups: tuple[bool, list[dict[str, Any]]], tmp_path: Path
) -> None:
    """The cases, with each expected alert's runbook taken from the rendered rule."""
    kill_switch, groups = rendered_groups
    write_rules(groups, tmp_path)
    rules = rules_by_name(groups)
    cases = yaml.safe_load(CASES[kill_switch].read_text())
    for case in cases["tests"]:
        for check in case["alert_rule_test"]:
            for alert in check["exp_alerts"]:
                runbook = rules[check["alertname"]]["annotations"]["runbook"]
                alert.setdefault("exp_annotations", {})["runbook"] = runbook
    (tmp_path / "cases.yaml").write_text(yaml.safe_dump(cases, sort_keys=False))
    output = run(promtool, "test", "rules", "cases.yaml", cwd=tmp_path)
    assert "SUCCESS" in output


def test_a_broken_expectation_fails_promtool(promtool: str, tmp_path: Path) -> None:
    """The harness can fail: an alert expected silent where it fires is reported."""
    write_rules(rule_groups(NAMESPACE), tmp_path)
    cases = yaml.safe_load(CASES[False].read_text())
    first = cases["tests"][0]
    first["alert_rule_test"] = [{"eval_time": "3m", "alertname": "LlmGatewayUpstreamRejectsKey"}]
    cases["tests"] = [first]
    (tmp_path / "cases.yaml").write_text(yaml.safe_dump(cases))
    done = subprocess.run(
        [promtool, "test", "rules", "cases.yaml"], cwd=tmp_path, capture_output=True, text=True
    )
    assert done.returncode != 0
    assert "LlmGatewayUpstreamRejectsKey" in done.stdout + done.stderr


def test_every_alert_has_a_firing_and_a_silent_case() -> None:
    firing: set[str] = set()
    silent: set[str] = set()
    for path in CASES.values():
        for case in yaml.safe_load(path.read_text())["tests"]:
            for check in case["alert_rule_test"]:
                (firing if check["exp_alerts"] else silent).add(check["alertname"])
    every = set(rules_by_name(rule_groups(NAMESPACE, kill_switch=True)))
    assert every - firing == set(), "alerts without a firing case"
    assert every - silent == set(), "alerts without a silent case"


def test_every_alert_has_a_severity_summary_and_runbook(
    rendered_groups: tuple[bool, list[dict[str, Any]]],
) -> None:
    _, groups = rendered_groups
    for name, rule in rules_by_name(groups).items():
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}, name
        assert set(rule["annotations"]) == {"summary", "runbook"}, name
        assert len(rule["annotations"]["runbook"]) > 40, name
        # Scoped to this gateway: every selector names the namespace.
        selectors = re.findall(r"\{[^}]*\}", rule["expr"].replace("{{", ""))
        assert all(f'namespace="{NAMESPACE}"' in s for s in selectors) or rule["expr"] == (
            "vector(1)"
        ), name


def test_the_rules_file_command_prints_the_rendered_rule(
    rendered_groups: tuple[bool, list[dict[str, Any]]],
) -> None:
    """One source: `python -m components.print_rules` gives what the PrometheusRule holds."""
    kill_switch, groups = rendered_groups
    argv = [sys.executable, "-m", "components.print_rules", NAMESPACE]
    if kill_switch:
        argv.append("--kill-switch")
    done = subprocess.run(argv, cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert yaml.safe_load(done.stdout) == {"groups": groups}


def test_dashboard_queries_are_valid_promql(promtool: str, tmp_path: Path) -> None:
    """Each panel query, with Grafana's variables filled in, parses as Prometheus parses it."""
    rules = []
    for title, queries in dashboard.panel_queries().items():
        for index, (_, expr) in enumerate(queries):
            concrete = expr.replace("$namespace", NAMESPACE).replace("$__rate_interval", "1m")
            record = re.sub(r"[^a-z0-9]+", "_", title.lower()).strip("_") + f"_{index}"
            rules.append({"record": f"dashboard:{record}", "expr": concrete})
    path = tmp_path / "dashboard.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    output = run(promtool, "check", "rules", str(path), cwd=tmp_path)
    assert f"SUCCESS: {len(rules)} rules found" in output
