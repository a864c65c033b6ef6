"""The stacks the policy pack's unit tests judge, rendered from the real component.

The policy pack runs in its own virtualenv (pulumi_policy pins protobuf/grpcio), where
the component cannot be imported; so this module renders the dev and prod stacks under
Pulumi's mock runtime and writes each as the resource list the engine hands a policy
pack (type, URN, name, parent, properties, provider with its properties) to
policy/tests/fixtures/. tests/unit/test_policy_pack.py fails when a file is stale;
regenerate with:

    .venv/bin/python -m tests.unit.policy_stack_fixture
"""

import json
from pathlib import Path
from typing import Any

from tests.support.pulumi_render import REPO_ROOT, Rendered, RenderedResource, render_stack

FIXTURES = REPO_ROOT / "policy" / "tests" / "fixtures"
COMPONENT_TYPE = "llm-gateway:index:LlmGateway"
# prod's image pinned as `pulumi config set --path proxy.imageDigest` would pin it.
PROD_DIGEST = "sha256:" + "0123456789abcdef" * 4
# fixture name: (stack file, dotted config overrides)
STACKS: dict[str, tuple[str, dict[str, Any]]] = {
    "dev": ("dev", {"smokeTest.onUp": True}),  # the smoke Jobs run the proxy image too
    "prod": ("prod", {"proxy.imageDigest": PROD_DIGEST}),
    # What the advisory rules are about, as the component declares it.
    "dev-advisories": (
        "dev",
        {"killSwitch": True, "allowedClients": [{"namespaceLabels": {}}]},
    ),
}
REDACTED = "[secret]"


def _redact(inputs: dict[str, Any], secret_paths: tuple[str, ...]) -> dict[str, Any]:
    """Secret values (the key) never go into a fixture: each top-level key holding one
    is replaced whole."""
    tops = {path.split(".")[0].split("[")[0] for path in secret_paths}
    return {k: (REDACTED if k in tops else v) for k, v in inputs.items()}


def _provider(rendered: Rendered, ref: str) -> dict[str, Any] | None:
    urn = ref.rsplit("::", 1)[0] if ref else ""  # a provider reference is URN::ID
    for r in rendered.resources:
        if r.urn == urn:
            return {"type": r.typ, "urn": r.urn, "name": r.name, "properties": r.inputs}
    return None


def _properties(rendered: Rendered, resource: RenderedResource) -> dict[str, Any]:
    if resource.typ == COMPONENT_TYPE:
        # A component's state is its registered outputs, which __main__.py exports 1:1.
        return dict(rendered.outputs)
    return _redact(resource.inputs, resource.secret_paths)


def analyzer_resources(rendered: Rendered) -> list[dict[str, Any]]:
    """Every resource as the engine describes it to a policy pack, in URN order (the
    SDK registers siblings in whatever order their inputs resolve)."""
    resources = [
        {
            "type": r.typ,
            "urn": r.urn,
            "name": r.name,
            "parent": r.parent_urn,
            "properties": _properties(rendered, r),
            "provider": _provider(rendered, r.provider),
        }
        for r in rendered.resources
    ]
    return sorted(resources, key=lambda r: str(r["urn"]))


def fixture_text(fixture: str) -> str:
    stack, overrides = STACKS[fixture]
    rendered = render_stack(stack, overrides=overrides)
    return json.dumps(analyzer_resources(rendered), indent=1, sort_keys=True) + "\n"


def fixture_path(fixture: str) -> Path:
    return FIXTURES / f"{fixture}-stack.json"


def main() -> None:
    FIXTURES.mkdir(parents=True, exist_ok=True)
    for fixture in STACKS:
        fixture_path(fixture).write_text(fixture_text(fixture))
        print(f"wrote {fixture_path(fixture).relative_to(REPO_ROOT)}")


if __name__ == "__main__":
    main()
