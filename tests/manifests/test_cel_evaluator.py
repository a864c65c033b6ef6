"""The CEL evaluator reports what it cannot evaluate as unevaluable, never as passed."""

import pytest

from tests.manifests.cel_rules import Outcome, RuleSite, evaluate, rule_sites


def site(rule: str, value: object) -> RuleSite:
    return RuleSite(path="spec", rule=rule, message="the message", value=value)


def test_a_true_rule_passes_and_a_false_rule_fails_with_its_message() -> None:
    assert evaluate(site("has(self.a) && self.a == 1", {"a": 1})).outcome is Outcome.PASSED
    verdict = evaluate(site("has(self.a) && self.a == 1", {"a": 2}))
    assert verdict.outcome is Outcome.FAILED
    assert verdict.detail == "the message"


@pytest.mark.parametrize(
    ("rule", "reason"),
    [
        ("self.a == oldSelf.a", "transition rule"),
        ("isURL(self.a)", "cannot evaluate"),
        ("self.a ==", "cannot compile"),
        ("self.a", "not bool"),
    ],
)
def test_rules_it_cannot_evaluate_are_unevaluable(rule: str, reason: str) -> None:
    verdict = evaluate(site(rule, {"a": "https://example.com"}))
    assert verdict.outcome is Outcome.UNEVALUABLE
    assert reason in verdict.detail


def test_rules_apply_only_where_the_object_has_a_value() -> None:
    schema = {
        "type": "object",
        "x-kubernetes-validations": [{"rule": "true"}],
        "properties": {
            "present": {"type": "object", "x-kubernetes-validations": [{"rule": "1 == 1"}]},
            "absent": {"type": "object", "x-kubernetes-validations": [{"rule": "1 == 2"}]},
            "items": {
                "type": "array",
                "items": {"type": "object", "x-kubernetes-validations": [{"rule": "has(self.x)"}]},
            },
        },
    }
    value = {"present": {}, "items": [{"x": 1}, {"y": 2}]}
    sites = [(s.path, s.rule) for s in rule_sites(schema, value)]
    assert sites == [
        ("<root>", "true"),
        ("present", "1 == 1"),
        ("items[0]", "has(self.x)"),
        ("items[1]", "has(self.x)"),
    ]
