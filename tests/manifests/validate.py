"""One entry point for the manifest tests: is this object acceptable to the API server?

Custom kinds: the CRD's structural schema (unknown fields rejected) and its CEL rules on
the defaulted object. Core kinds: the Kubernetes OpenAPI schema via kubernetes-validate
(bundled schemas, strict: unknown fields rejected; works offline).
"""

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import kubernetes_validate

from tests.manifests.cel_rules import Outcome, evaluate, rule_sites
from tests.manifests.crd_schema import load_crds, schema_errors, with_defaults

KUBERNETES_VERSION = kubernetes_validate.utils.latest_version()
CORE_GROUPS = {"", "apps", "policy", "batch", "networking.k8s.io", "rbac.authorization.k8s.io"}


def is_core(manifest: dict[str, Any]) -> bool:
    api_version = str(manifest["apiVersion"])
    group = api_version.split("/")[0] if "/" in api_version else ""
    return group in CORE_GROUPS


@dataclass
class Findings:
    """What is wrong with one object, and which CEL rules could not be evaluated."""

    errors: list[str] = field(default_factory=list)
    unevaluable: list[str] = field(default_factory=list)


def core_errors(manifest: dict[str, Any]) -> list[str]:
    try:
        kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        # kubernetes-validate stops at the first violation.
        path = ".".join(str(p) for p in exc.absolute_path) or "<root>"
        return [f"{path}: {exc.message}"]
    except kubernetes_validate.SchemaNotFoundError as exc:
        return [exc.message]
    return []


def custom_findings(manifest: dict[str, Any], crds_root: Path) -> Findings:
    findings = Findings()
    crd = load_crds(crds_root).get((manifest["apiVersion"], manifest["kind"]))
    if crd is None:
        findings.errors.append(
            f"no CRD serves {manifest['apiVersion']} {manifest['kind']} under {crds_root}"
        )
        return findings
    findings.errors += schema_errors(crd, manifest)
    for site in rule_sites(crd.schema, with_defaults(crd.schema, manifest)):
        verdict = evaluate(site)
        if verdict.outcome is Outcome.FAILED:
            findings.errors.append(f"{site.path}: CEL rule failed: {verdict.detail}")
        elif verdict.outcome is Outcome.UNEVALUABLE:
            findings.unevaluable.append(f"{site.path}: {site.rule} ({verdict.detail})")
    return findings


def findings(manifest: dict[str, Any], crds_root: Path) -> Findings:
    """Everything the validators say about one object."""
    if is_core(manifest):
        return Findings(errors=core_errors(manifest))
    return custom_findings(manifest, crds_root)
