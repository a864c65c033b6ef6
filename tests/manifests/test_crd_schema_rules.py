"""How the CRD schema is turned into a validator: unknown fields, preserved fields, defaults."""

import jsonschema

from tests.manifests.crd_schema import strict_json_schema, with_defaults

SCHEMA = {
    "type": "object",
    "properties": {
        "known": {"type": "string"},
        "open": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
        "map": {"type": "object", "additionalProperties": {"type": "string"}},
        "port": {"x-kubernetes-int-or-string": True},
        "ref": {
            "type": "object",
            "properties": {
                "group": {"type": "string", "default": ""},
                "kind": {"type": "string", "default": "Service"},
                "name": {"type": "string"},
            },
        },
        "refs": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"weight": {"type": "integer", "default": 1}},
            },
        },
    },
}


def errors(value: object) -> list[str]:
    validator = jsonschema.Draft7Validator(strict_json_schema(SCHEMA))
    return [e.message for e in validator.iter_errors(value)]


def test_unknown_fields_are_rejected_where_the_schema_lists_properties() -> None:
    assert errors({"known": "x", "typo": 1}) == [
        "Additional properties are not allowed ('typo' was unexpected)"
    ]
    assert errors({"ref": {"name": "a", "namespace": "b"}}) != []


def test_preserved_and_map_fields_stay_open() -> None:
    assert errors({"open": {"anything": {"goes": 1}}, "map": {"k": "v"}}) == []
    assert errors({"map": {"k": 1}}) != []


def test_int_or_string_takes_both() -> None:
    assert errors({"port": 80}) == []
    assert errors({"port": "http"}) == []
    assert errors({"port": 1.5}) != []


def test_defaults_fill_present_objects_only() -> None:
    assert with_defaults(SCHEMA, {"ref": {"name": "a"}, "refs": [{}, {"weight": 3}]}) == {
        "ref": {"name": "a", "group": "", "kind": "Service"},
        "refs": [{"weight": 1}, {"weight": 3}],
    }
    assert with_defaults(SCHEMA, {}) == {}
