"""The component package (package/): its inferred schema and what it builds.

The schema is the one `component_provider_host` serves to the engine (and that
`pulumi package get-schema package/` prints); construct is driven with the camelCase
inputs another language sends, under Pulumi's mock runtime.
"""

import json
from typing import Any

import pulumi
import pytest
from pulumi.provider.experimental.component import ComponentProvider
from pulumi.provider.experimental.util import camel_case
from pydantic import BaseModel

from components.config_model import LlmGatewayConfig
from components.config_reference import model_of
from package import codegen
from package.__main__ import NAME, VERSION
from package.component import ArgsError, LlmGateway, to_config
from tests.support.pulumi_render import (
    TEST_IMAGE,
    Rendered,
    fake_key,
    render,
    render_stack,
    stack_config,
)

TOKEN = "llm-gateway:index:LlmGateway"
KEY = fake_key("package")


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    provider = ComponentProvider([LlmGateway], NAME, None, VERSION)
    assert provider.schema is not None
    result: dict[str, Any] = json.loads(provider.schema)
    return result


def _type_of(schema: dict[str, Any], prop: dict[str, Any]) -> dict[str, Any]:
    ref = prop.get("$ref") or prop.get("items", {}).get("$ref")
    assert ref, prop
    found: dict[str, Any] = schema["types"][ref.removeprefix("#/types/")]
    return found


def test_args_py_is_generated_from_the_config_model() -> None:
    assert codegen.ARGS_FILE.read_text() == codegen.generate(), (
        "package/args.py is stale: `.venv/bin/python -m package.codegen` regenerates it"
    )


def test_the_schema_has_the_token_the_key_input_and_the_programs_outputs(
    schema: dict[str, Any],
) -> None:
    assert schema["name"] == "llm-gateway"
    resource = schema["resources"][TOKEN]
    assert resource["isComponent"] is True
    assert resource["requiredInputs"] == ["openaiKey"]
    assert "plain" not in resource["inputProperties"]["openaiKey"]  # any input, secret or not
    program_outputs = render_stack("dev").outputs
    assert set(resource["properties"]) == set(program_outputs)


def _check_level(
    schema: dict[str, Any], props: dict[str, Any], required: list[str], model: type[BaseModel]
) -> None:
    """One model vs one schema object type, then every nested section."""
    keys = {codegen.config_key(n, f): f for n, f in model.model_fields.items()}
    assert set(props) == set(keys), model.__name__
    assert set(required) == {k for k, f in keys.items() if f.is_required()}, model.__name__
    for key, field in keys.items():
        assert camel_case(codegen.snake(key)) == key
        inner = model_of(field.annotation)
        if inner is not None:
            nested = _type_of(schema, props[key])
            _check_level(schema, nested["properties"], nested.get("required", []), inner)
        else:
            assert "$ref" not in props[key], key


def test_every_config_key_is_a_schema_input_at_every_level(schema: dict[str, Any]) -> None:
    resource = schema["resources"][TOKEN]
    inputs = dict(resource["inputProperties"])
    assert inputs.pop("openaiKey")
    _check_level(schema, inputs, [], LlmGatewayConfig)
    proxy = _type_of(schema, inputs["proxy"])["properties"]
    assert proxy["imageDigest"]["description"] == "pin the image by digest (`repo@sha256:…`)"
    assert proxy["replicas"] == {
        "description": "pod count; a PodDisruptionBudget (maxUnavailable 1) when > 1 (default 1)",
        "type": "integer",
        "plain": True,
    }


def test_schema_types_are_named_for_the_sdks_to_add_their_suffix(schema: dict[str, Any]) -> None:
    """Each SDK appends its own suffix to an input type (TypeScript: `ProxyArgs`), so a type
    named `ProxyArgs` in the schema would reach a TypeScript program as `ProxyArgsArgs`."""
    names = {token.removeprefix("llm-gateway:index:") for token in schema["types"]}
    assert {"Proxy", "Gateway", "App", "Client"} <= names
    assert not [name for name in names if name.endswith("Args")]


def _construct(inputs: dict[str, Any], *, expect_error: bool = False) -> Rendered:
    """Run the provider's construct as the engine would for a remote component."""
    provider = ComponentProvider([LlmGateway], NAME, None, VERSION)

    def program() -> None:
        # The key arrives as a secret, as from `config.requireSecret` in another language.
        sent = {**inputs, "openaiKey": pulumi.Output.secret(inputs["openaiKey"])}
        result = provider.construct("llm-gateway", TOKEN, sent, pulumi.ResourceOptions())
        for name, value in result.state.items():
            pulumi.export(name, value)

    return render({}, stack="dev", program=program, expect_error=expect_error)


# Label keys are the user's own: camelCase ones must reach the NetworkPolicy untouched.
CLIENTS = [{"namespaceLabels": {"teamName": "ai"}, "podLabels": {"app.kubernetes.io/name": "chat"}}]


def _package_inputs(stack: str, key: str) -> dict[str, Any]:
    """A stack file's config as another language's program passes it (camelCase inputs)."""
    return stack_config(stack, key=key, overrides={"allowedClients": CLIENTS})


def test_construct_declares_exactly_what_the_python_program_declares() -> None:
    from_package = _construct(_package_inputs("dev", KEY))
    from_program = render_stack("dev", key=KEY, overrides={"allowedClients": CLIENTS})
    assert "teamName" in json.dumps(from_program.manifests())
    assert sorted(from_package.manifests(), key=json.dumps) == sorted(
        from_program.manifests(), key=json.dumps
    )
    assert from_package.outputs == from_program.outputs
    secret = from_package.one("Secret")
    assert secret.secret_paths == ("data",)
    assert KEY not in json.dumps(from_package.outputs)
    assert TEST_IMAGE in json.dumps(from_package.manifests())


def test_bad_inputs_fail_naming_each_key_before_any_resource() -> None:
    inputs = _package_inputs("dev", KEY)
    inputs["proxy"]["imageDigest"] = "latest"
    inputs["gateway"]["port"] = 15020
    result = _construct(inputs, expect_error=True)
    message = str(result.error)
    # The provider wraps what __init__ raised (a ComponentInitError, reported as a user
    # error); the same inputs raise ArgsError from the component itself.
    with pytest.raises(ArgsError, match=r"proxy\.imageDigest: must be 'sha256:'"):
        to_config({"proxy": {"image": TEST_IMAGE, "image_digest": "latest"}, "openai_key": KEY})
    for key in ("proxy.imageDigest", "gateway.port"):
        assert key in message, message
    assert "LlmGateway has 2 bad input(s)" in message
    assert KEY not in message
    assert not [r for r in result.resources if r.typ.startswith("kubernetes:")]
