"""x-kubernetes-validations: find each CEL rule that applies to an object, evaluate it.

A rule applies where its schema node has a value in the (defaulted) object, as in the
API server. Evaluation uses cel-python; a rule it cannot evaluate (a Kubernetes-only
function, a transition rule needing oldSelf, an interpreter error) is reported as
`unevaluable` with the reason, never as passed.
"""

from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum
from typing import Any

import celpy
from celpy import celtypes
from celpy.adapter import json_to_cel


@dataclass(frozen=True)
class RuleSite:
    """One rule at one place in one object."""

    path: str
    rule: str
    message: str
    value: Any


class Outcome(Enum):
    PASSED = "passed"
    FAILED = "failed"
    UNEVALUABLE = "unevaluable"


@dataclass(frozen=True)
class Verdict:
    outcome: Outcome
    detail: str


def rule_sites(schema: dict[str, Any], value: Any, path: str = "") -> Iterator[RuleSite]:
    """Every rule whose node is present in `value` (walk schema and value together)."""
    if value is None:
        return
    for validation in schema.get("x-kubernetes-validations", []):
        yield RuleSite(path or "<root>", validation["rule"], validation.get("message", ""), value)
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        for name, child in value.items():
            sub = f"{path}.{name}" if path else name
            if name in properties:
                yield from rule_sites(properties[name], child, sub)
            elif isinstance(extra, dict):
                yield from rule_sites(extra, child, sub)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for index, item in enumerate(value):
            yield from rule_sites(schema["items"], item, f"{path}[{index}]")


def evaluate(site: RuleSite) -> Verdict:
    """Run one rule with `self` bound to its node; anything but a clean bool is unevaluable."""
    if "oldSelf" in site.rule:
        return Verdict(Outcome.UNEVALUABLE, "transition rule (oldSelf): only checked on update")
    env = celpy.Environment()
    try:
        program = env.program(env.compile(site.rule))
    except Exception as exc:
        return Verdict(Outcome.UNEVALUABLE, f"cel-python cannot compile it: {exc}")
    try:
        result = program.evaluate({"self": json_to_cel(site.value)})
    except Exception as exc:
        return Verdict(Outcome.UNEVALUABLE, f"cel-python cannot evaluate it: {exc}")
    if isinstance(result, celtypes.BoolType):
        if bool(result):
            return Verdict(Outcome.PASSED, "")
        return Verdict(Outcome.FAILED, site.message or site.rule)
    return Verdict(Outcome.UNEVALUABLE, f"result is {type(result).__name__}, not bool: {result!r}")
