"""The body scanners on their own: exact, linear and bounded."""

import json
import random
import time

import pytest

from proxy.policy.form_scan import boundary_of, multipart_models, urlencoded_models
from proxy.policy.json_scan import MAX_DEPTH, MAX_ITEMS, JsonScanError, scan_json


def names(body: bytes) -> list[str | None]:
    return [model.name for model in scan_json(body).models]


def reference(text: str) -> list[str | None] | str:
    """What a strict parser sees: every top-level key equal to "model" in any case."""
    try:
        document = json.loads(text, object_pairs_hook=lambda pairs: ("obj", pairs))
    except ValueError:
        return "invalid"
    if not isinstance(document, tuple):
        return []
    return [v if isinstance(v, str) else None for k, v in document[1] if k.casefold() == "model"]


def scanned(text: str) -> list[str | None] | str:
    try:
        return names(text.encode())
    except JsonScanError:
        return "invalid"


def test_every_case_variant_and_duplicate_of_model_is_found_in_order() -> None:
    body = b'{"model":"a","MODEL":"b","Model":["c"],"mod\\u0065l":"d","x":{"model":"nested"}}'
    assert names(body) == ["a", "b", None, "d"]
    assert names(b'{"model": 123}') == [None]
    assert names(b'{"messages": []}') == []
    assert scan_json(b'[{"model": "x"}]').is_object is False


def test_scan_agrees_with_a_strict_parser_on_random_and_mutated_documents() -> None:
    rng = random.Random(12)

    def value(depth: int) -> object:
        roll = rng.random()
        if depth > 3 or roll < 0.4:
            return rng.choice([1, -2.5e3, "s", 'q"\\', None, True, False, "é", 0, "model"])
        if roll < 0.7:
            return [value(depth + 1) for _ in range(rng.randint(0, 3))]
        keys = ["a", "model", "Model", "mOdEl"]
        return {rng.choice(keys): value(depth + 1) for _ in range(rng.randint(0, 3))}

    for _ in range(3000):
        text = json.dumps(value(0), ensure_ascii=rng.random() < 0.5, indent=rng.choice([None, 1]))
        if rng.random() < 0.4:
            at = rng.randrange(len(text) + 1)
            text = text[:at] + rng.choice(',]}"[{:1-e ') + text[at:]
        assert scanned(text) == reference(text), text


def test_long_strings_and_many_escapes_are_walked_exactly() -> None:
    text = ("line\n" * 300_000) + '"quoted"'  # > 1 MiB, > 256 escapes: the piecewise path
    body = json.dumps({"messages": [{"content": text}], "prompt": text, "model": "m"}).encode()
    assert names(body) == ["m"]
    long_model = json.dumps({"model": "x" * 2_000_000}).encode()
    (found,) = scan_json(long_model).models
    assert found.name is None
    assert len(found.shown) < 100
    with pytest.raises(JsonScanError, match="invalid string"):
        scan_json(b'{"model": "' + b"a" * 2_000_000 + b'\x01"}')


@pytest.mark.parametrize(
    "body",
    [b'{"a":1,}', b"[1,]", b'{"a" 1}', b"01", b"1.", b'{"a":tru}', b'{"a":"\x01"}', b"NaN", b""],
)
def test_invalid_json_is_refused(body: bytes) -> None:
    with pytest.raises(JsonScanError):
        scan_json(body)


def test_deep_nesting_and_huge_numbers_are_refused_cleanly() -> None:
    with pytest.raises(JsonScanError, match="deeper than"):
        scan_json(b"[" * 100_000 + b"]" * 100_000)
    with pytest.raises(JsonScanError, match="number longer"):
        scan_json(b'{"model":"m","n":' + b"9" * 5000 + b"}")
    assert names(b"[" * MAX_DEPTH + b"]" * MAX_DEPTH) == []


def test_pathological_bodies_are_refused_within_a_bounded_time() -> None:
    size = 16 * 1024 * 1024  # the default body cap
    nested = b'{"model":"m","x":[' + b"[]," * (size // 3) + b"[]]}"
    top_level_keys = b'{"model":"m",' + b'"a":1,' * (size // 6) + b'"z":1}'
    for body in (nested, top_level_keys):
        began = time.process_time()
        with pytest.raises(JsonScanError, match=str(MAX_ITEMS)):
            scan_json(body)
        assert time.process_time() - began < 3  # ~0.3 s; json.loads took seconds and GBs


def test_large_legitimate_bodies_scan_in_linear_time() -> None:
    image = "QUJD" * (1024 * 1024)  # a 4 MiB base64 image
    content = [{"type": "image_url", "image_url": {"url": "data:image/png;base64," + image}}]
    chat = {"model": "gpt-4o", "messages": [{"role": "user", "content": content}]}
    tokens = {"model": "text-embedding-3-small", "input": [list(range(1000))] * 200}
    for document in (chat, tokens):
        body = json.dumps(document).encode()
        began = time.process_time()
        assert names(body) == [document["model"]]
        assert time.process_time() - began < 2


def form(*parts: bytes, boundary: bytes = b"b", newline: bytes = b"\r\n") -> bytes:
    chunks = []
    for headers in parts:
        chunks += [b"--" + boundary, headers, b"", b"gpt-4o-transcribe"]
    return newline.join([*chunks, b"--" + boundary + b"--", b""])


@pytest.mark.parametrize(
    "headers",
    [
        b'Content-Disposition: form-data; name="model"',
        b"content-disposition:form-data;name=model",
        b'Content-Disposition: form-data; name = "model"',
        b"Content-Disposition: form-data; name*=UTF-8''model",
        b"Content-Disposition: form-data; name*=utf-8''%6Dodel",
        b'Content-Disposition: attachment; name="model"',
        b'Content-Disposition: form-data; filename="x"; name="MODEL"',
        b'Content-Disposition: form-data;\r\n\tname="model"',
        b'Content-Disposition: form-data; name="mo\\del"',
    ],
    ids=[
        "plain",
        "tight",
        "spaces",
        "rfc5987",
        "rfc5987-escaped",
        "attachment",
        "upper",
        "folded",
        "quoted-pair",
    ],
)
def test_multipart_model_field_spellings_are_all_found(headers: bytes) -> None:
    for newline in (b"\r\n", b"\n"):
        body = form(b'Content-Disposition: form-data; name="file"', headers, newline=newline)
        found = multipart_models(body, "b")
        assert [m.name for m in found] == ["gpt-4o-transcribe"], (headers, newline)


def test_multipart_scan_is_linear_on_repeated_disposition_lines() -> None:
    # The old regex took 32 s on 400 KB of this; the scan must stay fast at 16 MiB.
    body = b"--b\r\n" + b"content-disposition:form-data;" * (16 * 1024 * 1024 // 30)
    began = time.process_time()
    with pytest.raises(ValueError, match="16 KiB"):
        multipart_models(body, "b")
    many_parts = (b"--b\r\n\r\nx\r\n") * 200_000
    with pytest.raises(ValueError, match="parts"):
        multipart_models(many_parts, "b")
    assert time.process_time() - began < 2


def test_boundary_is_read_from_the_content_type() -> None:
    assert boundary_of('multipart/form-data; boundary="a b"') == "a b"
    assert boundary_of("multipart/form-data; charset=x; BOUNDARY=xyz") == "xyz"
    assert boundary_of("multipart/form-data") is None
    assert boundary_of("multipart/form-data; boundary=a; boundary=b") is None  # ambiguous


def test_urlencoded_model_fields_are_found_in_any_spelling() -> None:
    body = b"a=1&model=gpt-4o-mini&MODEL=o1-pro&%6Dodel=o3&mode=x;Model=o1+pro&modelx=y"
    assert [m.name for m in urlencoded_models(body)] == [
        "gpt-4o-mini", "o1-pro", "o3", "o1 pro",
    ]  # fmt: skip
    began = time.process_time()
    assert urlencoded_models(b"&" * (16 * 1024 * 1024)) == []
    with pytest.raises(ValueError, match="model fields"):
        urlencoded_models(b"model=x&" * (2 * 1024 * 1024))
    with pytest.raises(ValueError, match="fields named like model"):
        urlencoded_models(b"mxxxx=x&" * (2 * 1024 * 1024))
    assert time.process_time() - began < 4


@pytest.mark.parametrize(
    "body",
    [
        b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}',
        b'{"model": NaN}',
        b'{"model": "m", "t": Infinity}',
        b'{"model": "m", "n": ' + b"1" * 400 + b"}",
        b'{"model": "m", "x": "\xff\xfe"}',  # bytes beyond UTF-8 in a nested string
        b'\xef\xbb\xbf{"model": "m"}',  # a BOM
        b'{"model": "' + b"\\u0041" * 180 + b'"}',  # short decoded, long as written
        b'{"model": "' + b"a" * 1100 + b'"}',
        b'{"Model": ["x"], "MODEL": "y", "mod\\u0065l": "z"}',
        b'{"model": "m", "d": ' + b"[" * 300 + b"]" * 300 + b"}",
        b'{"model": "\\ud800"}',
        b"[" * 255 + b"]" * 255,
        b'{"a": 1,}',
        b"   ",
        b'{"model":"a","model":"b"}',  # a dict keeps only the last of duplicates
        b'{"model":"a","MODEL":"b","x":{"model":"c"}}',
        b'{"model":"a","role":"model"}',
        b'{"model":"a","t":1e400}',
        b'{"model":"a","n":123456789012345678901234567890}',
        b'{"model":"a","x":"\xff"}',
    ],
)
def test_the_small_body_fast_path_answers_exactly_as_the_scanner(body: bytes) -> None:
    """The C-parser fast path answers only where the scanner would say the same."""
    from proxy.policy.json_scan import _Scanner

    try:
        expected: object = _Scanner(body).run()
    except JsonScanError:
        expected = "invalid"
    try:
        got: object = scan_json(body)
    except JsonScanError:
        got = "invalid"
    assert got == expected


def test_the_fast_path_agrees_with_the_scanner_on_random_documents() -> None:
    from proxy.policy.json_scan import _scan_small, _Scanner

    rng = random.Random(7)
    for _ in range(2000):
        document = {
            rng.choice(["model", "Model", "x", "messages"]): rng.choice(
                ["gpt", 1, None, [1, {"model": "n"}], "é" * rng.randint(0, 90)]
            )
            for _ in range(rng.randint(0, 4))
        }
        text = json.dumps(document, ensure_ascii=rng.random() < 0.5).encode()
        if rng.random() < 0.3:  # a repeated key, which a dict would hide
            text = text[:-1] + b', "model": "again"}' if len(text) > 2 else text
        fast = _scan_small(text)
        if fast is not None:
            assert fast == _Scanner(text).run(), text
