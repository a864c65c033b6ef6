"""The config model is the one place a key is described: examples, errors, README table."""

import re
from pathlib import Path

import pytest

from components import config_reference
from components.config import EXAMPLES, validate_config
from tests.support.pulumi_render import (
    STACKS,
    TEST_IMAGE,
    fake_key,
    render,
    render_stack,
    stack_file_config,
)

README = Path(__file__).resolve().parents[2] / "README.md"
DOCS = config_reference.key_docs()
VALUE_KEYS = [d for d in DOCS if not d.is_model]


@pytest.mark.parametrize("doc", DOCS, ids=[d.path for d in DOCS])
def test_every_key_has_a_description_and_an_example(doc: config_reference.KeyDoc) -> None:
    assert doc.description, doc.path
    assert doc.example is not None, doc.path
    assert EXAMPLES[doc.path].startswith("pulumi config set "), doc.path


def _as_raw(path: str, value: object) -> dict[str, object]:
    raw: dict[str, object] = {"proxy": {"image": TEST_IMAGE}}
    *parents, leaf = path.split(".")
    node = raw
    for part in parents:
        node = node.setdefault(part, {})  # type: ignore[assignment]
    node[leaf] = value
    return raw


@pytest.mark.parametrize("doc", VALUE_KEYS, ids=[d.path for d in VALUE_KEYS])
def test_every_example_is_a_value_the_model_accepts(doc: config_reference.KeyDoc) -> None:
    if doc.path == "proxy.imageDigest":
        # A placeholder for the digest `docker push` prints; its shape is what matters.
        assert str(doc.example).startswith("sha256:<")
        return
    section, _, leaf = doc.path.partition(".")
    if section.startswith("allowedClients[]"):
        raw = _as_raw("allowedClients", [{"namespaceLabels": {}, leaf: doc.example}])
    elif section == "metricsScraper":
        raw = _as_raw(section, {"namespaceLabels": {}, leaf: doc.example})
    elif section.startswith("clients") or section == "identity":
        # Identity keys only make sense together: apps listed, identity on.
        app = {"name": "chat", "namespace": "team-ai", "serviceAccount": "chat"}
        if section == "clients[]":
            raw = _as_raw("clients", [{**app, leaf: doc.example}])
        else:
            raw = _as_raw(doc.path, doc.example)
        raw.setdefault("clients", [app])
        identity = raw.setdefault("identity", {})
        assert isinstance(identity, dict)
        identity.setdefault("mode", "attribute")
        raw["agentgateway"] = {"enabled": False}
    else:
        raw = _as_raw(doc.path, doc.example)
    config, problems = validate_config(raw)
    assert problems == [], problems
    assert config is not None


def test_the_readme_table_is_generated_from_the_model() -> None:
    table = config_reference.readme_table()
    text = README.read_text()
    found = re.search(r"<!-- config-table -->\n(.*?)\n<!-- /config-table -->", text, re.S)
    assert found, "README.md lost its <!-- config-table --> markers"
    assert found[1] == table, f"README.md's config table is stale; replace it with:\n{table}"


def test_nested_keys_get_path_commands_and_sections_their_own_example() -> None:
    assert EXAMPLES["gateway.port"] == "pulumi config set --path gateway.port 80"
    assert EXAMPLES["proxy.resources.limits.memory"].endswith(" 256Mi")
    assert EXAMPLES["proxy.resources.requests.memory"].endswith(" 64Mi")
    assert EXAMPLES["proxy.allowedModels"] == (
        "pulumi config set --path 'proxy.allowedModels[0]' gpt-4o-mini"
    )
    assert EXAMPLES["metricsScraper.namespaceLabels"] == (
        "pulumi config set --path metricsScraper.namespaceLabels.team observability"
    )


@pytest.mark.parametrize("stack", STACKS)
def test_no_stack_file_names_an_image(stack: str) -> None:
    # None is published; a stack must point at the image its team built and pushed.
    assert "image" not in stack_file_config(stack)["proxy"]


def test_the_proxy_without_an_image_fails_saying_how_to_get_one() -> None:
    result = render_stack("dev", image=None, expect_error=True)
    assert result.resources == []
    (problem,) = result.error.problems  # type: ignore[union-attr]
    assert problem.key == "proxy.image"
    assert "make image" in problem.problem
    assert "make demo" in problem.problem
    assert problem.example == (
        "pulumi config set --path proxy.image registry.example.com/llm-proxy:0.1.0"
    )


def test_only_the_gateway_plane_needs_no_image_and_its_smoke_command_says_so() -> None:
    result = render_stack("dev", image=None, overrides={"proxy.enabled": False})
    (line,) = result.outputs["smokeTest"].splitlines()
    assert "proxy.image" in line
    assert line.endswith("exit 1")


def test_a_list_key_must_be_a_yaml_list() -> None:
    config = {"openaiKey": fake_key("x"), "allowedClients": "team-ai", "proxy": {"image": "x/y"}}
    result = render(config, expect_error=True)
    assert [p.key for p in result.error.problems] == ["allowedClients"]  # type: ignore[union-attr]
