"""The real CRDs as validators: structural schema (unknown fields rejected) and defaults.

CRDs come from LLM_GATEWAY_CRDS_DIR, or ../shared/crds next to the repo. They are read
as published, never copied into the repo.
"""

import copy
import os
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
CRDS_ENV = "LLM_GATEWAY_CRDS_DIR"
# libyaml's safe loader when present: the CRDs are ~30k lines, pure Python takes seconds.
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def crds_dir() -> Path:
    """Where the CRDs are read from (may not exist: see `require_crds`)."""
    return Path(os.environ.get(CRDS_ENV) or REPO_ROOT.parent / "shared" / "crds")


def require_crds(what: str) -> None:
    """Stop a test that needs the CRDs when they are missing: a skip on a laptop, a
    failure in CI (`CI` set), where a skip would silently drop every CEL and schema check."""
    crds = crds_dir()
    if crds.is_dir():
        return
    message = f"CRDs not found at {crds} (set {CRDS_ENV} to the folder with them): {what}"
    if os.environ.get("CI"):
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


@dataclass(frozen=True)
class CrdVersion:
    """One served version of one CRD: the schema the API server validates against."""

    group: str
    version: str
    kind: str
    schema: dict[str, Any]
    source: Path

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}"


def _crd_documents(root: Path) -> Iterator[tuple[Path, dict[str, Any]]]:
    for path in sorted(root.rglob("*.y*ml")):
        for doc in yaml.load_all(path.read_text(), Loader=_LOADER):
            if isinstance(doc, dict) and doc.get("kind") == "CustomResourceDefinition":
                yield path, doc


@cache
def load_crds(root: Path) -> dict[tuple[str, str], CrdVersion]:
    """(apiVersion, kind) → served schema, for every CRD file under `root`."""
    found = {}
    for path, doc in _crd_documents(root):
        spec = doc["spec"]
        for version in spec["versions"]:
            if not version.get("served", False):
                continue
            crd = CrdVersion(
                group=spec["group"],
                version=version["name"],
                kind=spec["names"]["kind"],
                schema=version["schema"]["openAPIV3Schema"],
                source=path,
            )
            found[(crd.api_version, crd.kind)] = crd
    return found


def strict_json_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """The structural schema as JSON Schema, rejecting fields it does not declare.

    Kubernetes prunes (or, with strict field validation, rejects) unknown fields; JSON
    Schema allows them unless told otherwise, so every object that lists `properties`
    and does not preserve unknown fields gets `additionalProperties: false`.
    """

    def convert(node: Any) -> Any:
        if isinstance(node, list):
            return [convert(item) for item in node]
        if not isinstance(node, dict):
            return node
        out = {k: convert(v) for k, v in node.items() if not k.startswith("x-kubernetes-")}
        if (
            "properties" in node
            and "additionalProperties" not in node
            and not node.get("x-kubernetes-preserve-unknown-fields")
        ):
            out["additionalProperties"] = False
        if node.get("x-kubernetes-int-or-string"):
            out.pop("type", None)
            out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
        if node.get("nullable"):
            declared = out.get("type")
            if isinstance(declared, str):
                out["type"] = [declared, "null"]
        return out

    converted: dict[str, Any] = convert(schema)
    return converted


def schema_errors(crd: CrdVersion, manifest: dict[str, Any]) -> list[str]:
    """Every schema violation, as 'path: message'."""
    validator = jsonschema.Draft7Validator(strict_json_schema(crd.schema))
    return sorted(
        f"{'.'.join(str(p) for p in error.absolute_path) or '<root>'}: {error.message}"
        for error in validator.iter_errors(manifest)
    )


def with_defaults(schema: dict[str, Any], value: Any) -> Any:
    """`value` with the schema's defaults filled in, as the API server does before CEL."""
    value = copy.deepcopy(value)
    _default_into(schema, value)
    return value


def _default_into(schema: dict[str, Any], value: Any) -> None:
    if isinstance(value, dict):
        for name, prop in schema.get("properties", {}).items():
            if name not in value and "default" in prop:
                value[name] = copy.deepcopy(prop["default"])
            if name in value:
                _default_into(prop, value[name])
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            for name in value:
                if name not in schema.get("properties", {}):
                    _default_into(extra, value[name])
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for item in value:
            _default_into(schema["items"], item)
