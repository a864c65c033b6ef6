"""Rendered objects against the real CRDs (schema + every applicable CEL rule) and core schemas."""

import json
from typing import Any

import pytest

from tests.manifests.cel_rules import Outcome, RuleSite, evaluate, rule_sites
from tests.manifests.crd_schema import (
    crds_dir,
    load_crds,
    require_crds,
    schema_errors,
    with_defaults,
)
from tests.manifests.validate import KUBERNETES_VERSION, core_errors, is_core
from tests.manifests.variants import object_id, objects

CRDS = crds_dir()
MISSING = "schema and CEL validation of every custom object"


def custom_params() -> list[Any]:
    custom = [(v, m) for v, m in objects() if not is_core(m)]
    if not CRDS.is_dir():
        return [pytest.param(None, None, id="no-crds")]  # the test skips, or fails in CI
    return [pytest.param(v, m, id=object_id(v, m)) for v, m in custom]


def rule_params() -> list[Any]:
    """One param per distinct (object kind, place, rule, value): each rule reported alone."""
    if not CRDS.is_dir():
        return [pytest.param(None, id="no-crds")]
    crds = load_crds(CRDS)
    seen: set[str] = set()
    params = []
    for variant, manifest in objects():
        crd = crds.get((manifest["apiVersion"], manifest["kind"]))
        if is_core(manifest) or crd is None:
            continue
        defaulted = with_defaults(crd.schema, manifest)
        for index, site in enumerate(rule_sites(crd.schema, defaulted)):
            key = json.dumps([manifest["kind"], site.path, site.rule, site.value], sort_keys=True)
            if key in seen:
                continue
            seen.add(key)
            params.append(
                pytest.param(site, id=f"{object_id(variant, manifest)}:{site.path}#{index}")
            )
    return params


@pytest.mark.parametrize(("variant", "manifest"), custom_params())
def test_custom_object_has_a_crd_and_matches_its_schema(
    variant: str, manifest: dict[str, Any] | None
) -> None:
    if manifest is None:
        require_crds(MISSING)
        return
    crd = load_crds(CRDS).get((manifest["apiVersion"], manifest["kind"]))
    assert crd is not None, f"no CRD serves {manifest['apiVersion']} {manifest['kind']}"
    assert schema_errors(crd, manifest) == []


@pytest.mark.parametrize("site", rule_params())
def test_cel_rule(site: RuleSite | None) -> None:
    if site is None:
        require_crds(MISSING)
        return
    verdict = evaluate(site)
    if verdict.outcome is Outcome.UNEVALUABLE:
        pytest.skip(f"not evaluated, so not passed: {site.rule!r}: {verdict.detail}")
    assert verdict.outcome is Outcome.PASSED, f"{site.path}: {verdict.detail}\nrule: {site.rule}"


@pytest.mark.parametrize(
    ("variant", "manifest"),
    [pytest.param(v, m, id=object_id(v, m)) for v, m in objects() if is_core(m)],
)
def test_core_object_matches_the_kubernetes_schema(variant: str, manifest: dict[str, Any]) -> None:
    assert core_errors(manifest) == [], f"Kubernetes {KUBERNETES_VERSION} (strict)"


def test_every_emitted_custom_kind_is_reached_by_cel_rules() -> None:
    """Guards the walker: if no rule applied, the CEL params above would silently vanish."""
    require_crds(MISSING)
    crds = load_crds(CRDS)
    kinds: dict[str, int] = {}
    for _, manifest in objects():
        crd = crds.get((manifest["apiVersion"], manifest["kind"]))
        if crd is not None:
            sites = list(rule_sites(crd.schema, with_defaults(crd.schema, manifest)))
            kinds[manifest["kind"]] = max(kinds.get(manifest["kind"], 0), len(sites))
    with_rules = {kind for kind, count in kinds.items() if count}
    assert with_rules == {"AgentgatewayBackend", "Gateway", "HTTPRoute"}
    assert all(kinds[kind] >= 5 for kind in with_rules), kinds
    # The Prometheus Operator's CRDs (v0.85.0) carry no CEL rules: their schema is the check.
    assert set(kinds) - with_rules == {"PodMonitor", "PrometheusRule"}
