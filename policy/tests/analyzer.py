"""Run the pack as the engine does: its analyzer service, fed the engine's own messages.

pulumi_policy ships no test runner for Python packs. Calling a rule's `validate` by hand
would skip what the engine path does (property deserialisation, enforcement levels,
policy config, stack resources with parents), so these helpers build the pack's gRPC
servicer, `_PolicyAnalyzerServicer` (the object `PolicyPack` serves; private, hence the
pinned pulumi_policy 1.21.0), and call Configure, Analyze and AnalyzeStack with
`AnalyzeRequest`/`AnalyzeStackRequest` messages like those the CLI sends.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from google.protobuf import struct_pb2
from guardrails.pack import PACK_NAME, POLICIES
from pulumi.runtime.proto import analyzer_pb2 as proto
from pulumi_policy import EnforcementLevel
from pulumi_policy.policy import _PolicyAnalyzerServicer

FIXTURES = Path(__file__).parent / "fixtures"


@dataclass(frozen=True)
class Diagnostic:
    """One violation as the CLI prints it: the rule's name, its level, the message."""

    policy: str
    level: str
    message: str
    urn: str


def load_stack(name: str) -> list[dict[str, Any]]:
    """A stack rendered from the real component (tests/unit/policy_stack_fixture.py)."""
    stack: list[dict[str, Any]] = json.loads((FIXTURES / f"{name}-stack.json").read_text())
    return copy.deepcopy(stack)


def _struct(props: dict[str, Any]) -> struct_pb2.Struct:
    message = struct_pb2.Struct()
    message.update(props)
    return message


def _provider(resource: dict[str, Any]) -> proto.AnalyzerProviderResource | None:
    provider = resource.get("provider")
    if not provider:
        return None
    return proto.AnalyzerProviderResource(
        type=provider["type"],
        urn=provider["urn"],
        name=provider["name"],
        properties=_struct(provider["properties"]),
    )


def _diagnostics(response: proto.AnalyzeResponse) -> list[Diagnostic]:
    return [
        Diagnostic(
            d.policyName, proto.EnforcementLevel.Name(d.enforcementLevel).lower(), d.message, d.urn
        )
        for d in response.diagnostics
    ]


def servicer(config: dict[str, dict[str, Any]] | None = None) -> _PolicyAnalyzerServicer:
    """The pack's analyzer, configured as `pulumi preview --policy-pack-config` would."""
    analyzer = _PolicyAnalyzerServicer(PACK_NAME, "0.1.0", POLICIES, EnforcementLevel.ADVISORY)
    request = proto.ConfigureAnalyzerRequest()
    for name, props in (config or {}).items():
        request.policyConfig[name].CopyFrom(
            proto.PolicyConfig(enforcementLevel=proto.MANDATORY, properties=_struct(props))
        )
    analyzer.Configure(request, None)
    return analyzer


def analyze(
    resources: list[dict[str, Any]], config: dict[str, dict[str, Any]] | None = None
) -> list[Diagnostic]:
    """Every violation the pack reports for these resources: each one alone (Analyze,
    as the engine calls it per resource), then the whole stack (AnalyzeStack)."""
    analyzer = servicer(config)
    found: list[Diagnostic] = []
    for r in resources:
        request = proto.AnalyzeRequest(
            type=r["type"], urn=r["urn"], name=r["name"], properties=_struct(r["properties"])
        )
        provider = _provider(r)
        if provider is not None:
            request.provider.CopyFrom(provider)
        found += _diagnostics(analyzer.Analyze(request, None))
    stack = proto.AnalyzeStackRequest()
    for r in resources:
        entry = stack.resources.add(
            type=r["type"],
            urn=r["urn"],
            name=r["name"],
            parent=r.get("parent", ""),
            properties=_struct(r["properties"]),
        )
        provider = _provider(r)
        if provider is not None:
            entry.provider.CopyFrom(provider)
    found += _diagnostics(analyzer.AnalyzeStack(stack, None))
    return found


def policies_violated(diagnostics: list[Diagnostic]) -> set[str]:
    return {d.policy for d in diagnostics}


def find(resources: list[dict[str, Any]], type_: str, name: str | None = None) -> dict[str, Any]:
    """The one resource of this type (and Pulumi name); its properties are editable."""
    found = [r for r in resources if r["type"] == type_ and name in (None, r["name"])]
    assert len(found) == 1, f"expected one {type_} {name or ''}, found {len(found)}"
    return found[0]
