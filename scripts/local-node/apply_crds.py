"""Apply every CRD under a directory to the e2e API server and wait until each is Established.

Usage: python scripts/local-node/apply_crds.py KUBECONFIG CRDS_DIR

The e2e suite reads the real CRDs (agentgateway, Gateway API) from a folder outside the repo
(LLM_GATEWAY_CRDS_DIR, default ../shared/crds); only CustomResourceDefinition documents are
applied, anything else in those files is ignored.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

ESTABLISH_TIMEOUT_S = 60.0


def load_crds(crds_dir: Path) -> list[dict[str, Any]]:
    """Every CustomResourceDefinition document in the YAML files below crds_dir."""
    docs: list[dict[str, Any]] = []
    for path in sorted(crds_dir.rglob("*.y*ml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if isinstance(doc, dict) and doc.get("kind") == "CustomResourceDefinition":
                docs.append(doc)
    return docs


def apply(api: Any, crd: dict[str, Any]) -> None:
    """Create the CRD, or replace it when it already exists (idempotent re-runs)."""
    name = crd["metadata"]["name"]
    try:
        api.create_custom_resource_definition(crd)
    except ApiException as exc:
        if exc.status != 409:
            raise
        current = api.read_custom_resource_definition(name)
        crd["metadata"]["resourceVersion"] = current.metadata.resource_version
        api.replace_custom_resource_definition(name, crd)


def established(api: Any, name: str) -> bool:
    """True once the API server serves the CRD's kind."""
    conditions = api.read_custom_resource_definition(name).status.conditions or []
    return any(c.type == "Established" and c.status == "True" for c in conditions)


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    kubeconfig, crds_dir = argv[1], Path(argv[2])
    crds = load_crds(crds_dir)
    if not crds:
        print(f"apply_crds: no CustomResourceDefinition found under {crds_dir}", file=sys.stderr)
        return 1
    api_client = config.new_client_from_config(config_file=kubeconfig)  # type: ignore[no-untyped-call]
    api = client.ApiextensionsV1Api(api_client)
    for crd in crds:
        apply(api, crd)
    pending = {crd["metadata"]["name"] for crd in crds}
    deadline = time.monotonic() + ESTABLISH_TIMEOUT_S
    while pending and time.monotonic() < deadline:
        pending = {name for name in pending if not established(api, name)}
        if pending:
            time.sleep(0.2)
    if pending:
        print(f"apply_crds: not Established: {sorted(pending)}", file=sys.stderr)
        return 1
    print(f"apply_crds: {len(crds)} CRDs Established from {crds_dir}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
