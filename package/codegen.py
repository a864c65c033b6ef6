"""Generate package/args.py, the component package's TypedDicts, from the config model.

The pydantic model (components/config_model.py) stays the one place a key is defined:
each model becomes a TypedDict whose keys are the snake_case of the config keys (the
inferred schema camelCases them back, so `proxy.imageDigest` is the same name in a stack
file and in a TypeScript or YAML program), each key documented with the field's
description and default. tests/unit/test_component_package.py fails when args.py is
stale; regenerate with:

    .venv/bin/python -m package.codegen
"""

import json
import re
import types
import typing
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from components.config_model import LlmGatewayConfig
from components.config_reference import model_of

ARGS_FILE = Path(__file__).with_name("args.py")
ROOT_ARGS = "LlmGatewayArgs"
KEY_INPUT = "openai_key"
KEY_DOC = (
    "the OpenAI API key; pass it as a secret (it is stored encrypted and never appears in "
    "outputs); only its fingerprint is public"
)
_SCALARS = {str: "str", int: "int", float: "float", bool: "bool"}


def snake(key: str) -> str:
    """`imageDigest` → `image_digest`: the inverse of the schema's camelCase."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", key).lower()


def config_key(name: str, field: FieldInfo) -> str:
    """The key a stack file (and the package's schema) uses for a model field."""
    return field.alias or name


def args_name(model: type[BaseModel]) -> str:
    """GatewayConfig → Gateway; LlmGatewayConfig → LlmGatewayArgs (the component's args).

    A nested TypedDict's name is its schema type's, and each generated SDK adds its own
    suffix: TypeScript's input type is `GatewayArgs`, not `GatewayArgsArgs`.
    """
    if model is LlmGatewayConfig:
        return ROOT_ARGS
    return model.__name__.removesuffix("Config")


def type_text(annotation: Any) -> str:
    """The TypedDict annotation for a field's type (None dropped: an absent key is unset)."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        (arg,) = [a for a in typing.get_args(annotation) if a is not type(None)]
        return type_text(arg)
    if origin is Annotated:
        return type_text(typing.get_args(annotation)[0])
    if origin is list:
        return f"list[{type_text(typing.get_args(annotation)[0])}]"
    if origin is dict:
        key, value = typing.get_args(annotation)
        assert key is str, f"map keys must be strings, not {key}"
        return f"dict[str, {type_text(value)}]"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return args_name(annotation)
    if annotation in _SCALARS:
        return _SCALARS[annotation]
    raise TypeError(f"no schema type for {annotation!r}")


def _default_json(field: FieldInfo) -> str | None:
    value = field.get_default(call_default_factory=True)
    if value is None:
        return None
    if isinstance(value, BaseModel):
        value = value.model_dump(by_alias=True, exclude_none=True)
    if isinstance(value, list):
        value = [
            v.model_dump(by_alias=True, exclude_none=True) if isinstance(v, BaseModel) else v
            for v in value
        ]
    return json.dumps(value)


def _is_section(field: FieldInfo) -> bool:
    """A section whose default is its model's own defaults: its keys document those, so
    repeating them all here would be noise."""
    value = field.get_default(call_default_factory=True)
    if not isinstance(value, BaseModel):
        return False
    try:
        return type(value)() == value
    except ValueError:  # the model has required keys: the default is worth showing
        return False


def _doc(field: FieldInfo) -> str:
    text = field.description or ""
    default = None if field.is_required() or _is_section(field) else _default_json(field)
    if default is not None:
        text += f" (default {default})"
    return text.replace("\\", "\\\\").replace('"""', '\\"\\"\\"')


def _models(model: type[BaseModel], seen: list[type[BaseModel]]) -> list[type[BaseModel]]:
    """Every model reachable from `model`, dependencies before dependants."""
    for field in model.model_fields.values():
        inner = model_of(field.annotation)
        if inner is not None and inner not in seen:
            _models(inner, seen)
    if model not in seen:
        seen.append(model)
    return seen


def _class_text(model: type[BaseModel]) -> str:
    doc = " ".join((model.__doc__ or "").split())  # one line: the schema shows it as is
    lines = [f"class {args_name(model)}(TypedDict, total=False):", f'    """{doc}"""', ""]
    if model is LlmGatewayConfig:
        lines += [f"    {KEY_INPUT}: Required[pulumi.Input[str]]", f'    """{KEY_DOC}"""', ""]
    for name, field in model.model_fields.items():
        typ = type_text(field.annotation)
        if field.is_required():
            typ = f"Required[{typ}]"
        lines += [f"    {snake(config_key(name, field))}: {typ}", f'    """{_doc(field)}"""', ""]
    return "\n".join(lines).rstrip() + "\n"


HEADER = '''"""GENERATED from components/config_model.py (`python -m package.codegen`); do not edit.

The component package's inputs: one TypedDict per config model, keys in snake_case of
the config keys (the inferred schema camelCases them back). Values are plain (they decide
which resources exist), except the key, which may be any input and is kept secret.
"""

from typing import Required, TypedDict

import pulumi
'''


def generate() -> str:
    classes = [_class_text(model) for model in _models(LlmGatewayConfig, [])]
    return HEADER + "".join(f"\n\n{text}" for text in classes)


def main() -> None:
    ARGS_FILE.write_text(generate())
    print(f"wrote {ARGS_FILE}")


if __name__ == "__main__":
    main()
