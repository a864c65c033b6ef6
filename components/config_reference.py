"""Everything said about a config key, derived from the model in config_model.py.

The example command shown with each error, the list of known keys (for "did you mean"),
the keys whose values are never quoted, and the README's config table all come from
the fields' descriptions and examples, so adding a key is a one-place change.

tests/unit/test_config_reference.py checks the README table and prints the current one.
"""

import json
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from .config_model import LlmGatewayConfig

OPENAI_KEY = "openaiKey"
_OPENAI_KEY_DOC = "provider key; required, stored encrypted, only ever in the Secret"


@dataclass(frozen=True)
class KeyDoc:
    """One config key: dotted path, meaning, default and a good example value."""

    path: str
    description: str
    default: Any
    example: Any
    sensitive: bool
    structured: bool  # an object, map or list: the CLI hands it over as JSON
    is_model: bool  # a section of keys (gateway, proxy, ...), not a value of its own
    required: bool


def set_command(path: str, value: Any, *, secret: bool = False) -> str:
    """`pulumi config set` of one value, `--path` (and quoting) for nested keys; a list
    item's key (`allowedClients[].podLabels`) is set on the first item."""
    path, value = _first_leaf(path.replace("[]", "[0]"), value)
    flags = " --secret" if secret else ""
    if "." in path or "[" in path:
        flags += " --path"
    if "[" in path:
        path = f"'{path}'"
    return f"pulumi config set{flags} {path} {_cli_text(value)}"


def _first_leaf(path: str, value: Any) -> tuple[str, Any]:
    """A structured example becomes the command for its first scalar."""
    while isinstance(value, dict | list) and value:
        if isinstance(value, list):
            path, value = f"{path}[0]", value[0]
        else:
            key, value = next(iter(value.items()))
            path = f"{path}.{key}" if "." not in key else f'{path}["{key}"]'
    return path, value


def _cli_text(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, dict | list):
        return f"'{json.dumps(value)}'"
    return str(value)


def model_of(annotation: Any) -> type[BaseModel] | None:
    """The model a field holds, directly, optionally or as list items."""
    for candidate in (annotation, *typing.get_args(annotation)):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def _is_structured(annotation: Any) -> bool:
    origin = typing.get_origin(annotation)
    return model_of(annotation) is not None or origin in (list, dict)


def _key_name(name: str, field: FieldInfo) -> str:
    return field.alias or name


def _extra(field: FieldInfo, key: str) -> Any:
    extra = field.json_schema_extra
    return extra.get(key) if isinstance(extra, dict) else None


def _walk(model: type[BaseModel], defaults: BaseModel | None, prefix: str) -> Iterator[KeyDoc]:
    for name, field in model.model_fields.items():
        path = f"{prefix}{_key_name(name, field)}"
        default = getattr(defaults, name, None) if defaults is not None else None
        if default is None and not field.is_required():
            default = field.get_default(call_default_factory=True)
        yield KeyDoc(
            path=path,
            description=field.description or "",
            default=default,
            example=field.examples[0] if field.examples else None,
            sensitive=bool(_extra(field, "sensitive")),
            structured=_is_structured(field.annotation),
            is_model=model_of(field.annotation) is not None
            and typing.get_origin(field.annotation) is not list,
            required=field.is_required() and defaults is None,
        )
        inner = model_of(field.annotation)
        if inner is not None:
            inner_defaults = default if isinstance(default, BaseModel) else None
            item = "[]" if typing.get_origin(field.annotation) is list else ""
            yield from _walk(inner, inner_defaults, f"{path}{item}.")


def key_docs() -> list[KeyDoc]:
    """Every key of the model tree, parents before children, in declaration order."""
    return list(_walk(LlmGatewayConfig, LlmGatewayConfig.model_construct(), ""))


def _part_of(example: Any, relative: str) -> Any:
    """The value at a dotted path inside a section's example, or None."""
    for part in relative.split("."):
        if not isinstance(example, dict) or part not in example:
            return None
        example = example[part]
    return example


def examples() -> dict[str, str]:
    """Key → a command that sets a good value; the openaiKey command included.

    A section's example overrides its children's own (limits {"memory": "256Mi"} beats
    the shared QuantitiesConfig example), the deepest section last.
    """
    docs = key_docs()
    commands = {OPENAI_KEY: set_command(OPENAI_KEY, "sk-...", secret=True)}
    commands.update({doc.path: set_command(doc.path, doc.example) for doc in docs})
    for section in sorted((d for d in docs if d.is_model), key=lambda d: d.path.count(".")):
        for doc in docs:
            if doc.path.startswith(f"{section.path}."):
                value = _part_of(section.example, doc.path.removeprefix(f"{section.path}."))
                if value is not None:
                    commands[doc.path] = set_command(doc.path, value)
    return commands


def top_level_structured_keys() -> frozenset[str]:
    """Top-level keys whose value the CLI passes as JSON text (objects and lists)."""
    return frozenset(d.path for d in key_docs() if d.structured and "." not in d.path)


def sensitive_keys() -> frozenset[str]:
    """Keys whose values may carry credentials: a problem with them never quotes them."""
    return frozenset(d.path for d in key_docs() if d.sensitive)


def _default_text(value: Any) -> str:
    if value is None:
        return "unset"
    if isinstance(value, BaseModel):
        value = value.model_dump(by_alias=True, exclude_none=True)
    if isinstance(value, list):
        value = [
            v.model_dump(by_alias=True, exclude_none=True) if isinstance(v, BaseModel) else v
            for v in value
        ]
    return f"`{json.dumps(value)}`"


def readme_table() -> str:
    """The config reference table in README.md (tests check it is current)."""
    rows = ["| key | default | meaning |", "|---|---|---|"]
    rows.append(f"| `{OPENAI_KEY}` | required | {_OPENAI_KEY_DOC} |")
    for doc in key_docs():
        if not doc.is_model:
            default = "required" if doc.required else _default_text(doc.default)
            rows.append(f"| `{doc.path}` | {default} | {doc.description} |")
    return "\n".join(rows)
