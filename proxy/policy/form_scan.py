"""The `model` fields of multipart and urlencoded form bodies, in one linear pass.

Multipart parsers differ (LF-only line ends, folded headers, `name*=UTF-8''...`,
`attachment; name=...`, spaces around `=`), and an upstream picks its own. So the
scan is deliberately lenient: a part boundary is `--boundary` at any line start
(CRLF or LF), headers may be folded, any disposition type counts, and the field
name is read from `name` or `name*` in every spelling real parsers accept. A name
equal to "model" in any letter case counts. Finding more fields than a strict
parser would only ever refuses more, never less.

Everything is found with bytes.find and compiled regexes over bounded slices, so
the work is linear in the body and the number of parts is capped.
"""

import re
import urllib.parse

from proxy.policy.json_scan import MAX_MODEL_BYTES, FoundModel, shown_name

MAX_PARTS = 1000  # real forms have a handful; beyond this the body is not checkable
MAX_PART_HEADER_BYTES = 16 * 1024
# All parts' headers together: their parsing runs at Python speed, so it is what bounds
# the scan's work (1,000 parts of 16 KiB headers took 1.5 s of CPU); real forms use ~1 KiB.
MAX_TOTAL_HEADER_BYTES = 256 * 1024
MAX_FORM_MODEL_FIELDS = 1000
MAX_FORM_CANDIDATES = 10_000  # keys that might spell "model"; real forms have a few

_BLANK_LINE = re.compile(rb"\r?\n\r?\n")
_LINE_END = re.compile(rb"\r?\n")
# A parameter `; name = value` with a token or quoted-string value.
_PARAM = re.compile(
    r';[ \t]*([^\s=;]+)[ \t]*=[ \t]*("(?:[^"\\]|\\.)*"|[^;]*)',
    re.DOTALL,
)
# A urlencoded key that could decode to "model" (it starts with m, M or a %XX escape;
# letters, digits, '+' and '%' only; 5 to 15 bytes), then '='.
_FORM_KEY = re.compile(rb"(?:^|[&;])([mM%][A-Za-z0-9%+]{4,14})=")
_WINDOW = 256 * 1024  # the regex runs over windows so no single call holds the GIL long


class FormScanError(ValueError):
    """The form could not be read with confidence (too many parts, huge headers...)."""


def boundary_of(content_type_header: str) -> str | None:
    """The one `boundary` of a multipart Content-Type header; None if absent or ambiguous.

    Parsers differ on which of two `boundary` parameters wins, so two is as good as none.
    """
    params = _PARAM.findall(";" + content_type_header.partition(";")[2])
    boundaries = {_unquote(value.strip()) for name, value in params if name.lower() == "boundary"}
    return boundaries.pop() if len(boundaries) == 1 else None


def multipart_models(body: bytes | bytearray, boundary: str) -> list[FoundModel]:
    """Every part whose field name is `model` (any case), in order."""
    delimiter = b"--" + boundary.encode("latin-1", "replace")
    found: list[FoundModel] = []
    delimiters = _delimiters(body, delimiter)
    header_bytes = 0
    for index, (_, start) in enumerate(delimiters):
        end = delimiters[index + 1][0] if index + 1 < len(delimiters) else len(body)
        header_end = _BLANK_LINE.search(body, start, min(end, start + MAX_PART_HEADER_BYTES))
        if header_end is None:
            if end - start > MAX_PART_HEADER_BYTES:
                raise FormScanError("a multipart part has more than 16 KiB of headers")
            continue  # the closing delimiter, or a part without a body
        header_bytes += header_end.start() - start
        if header_bytes > MAX_TOTAL_HEADER_BYTES:
            raise FormScanError("multipart parts have more than 256 KiB of headers in all")
        headers = bytes(body[start : header_end.start()]).decode("latin-1")
        if not _is_model_part(headers):
            continue
        value = bytes(body[header_end.end() : end])
        for ending in (b"\r\n", b"\n"):
            if value.endswith(ending):
                value = value[: -len(ending)]
                break
        found.append(_model_value(value))
    return found


def _delimiters(body: bytes | bytearray, delimiter: bytes) -> list[tuple[int, int]]:
    """Each `--boundary` line: where it starts, and where the part's headers start."""
    starts: list[tuple[int, int]] = []
    position = 0
    while True:
        at = body.find(delimiter, position)
        if at < 0:
            return starts
        position = at + len(delimiter)
        if at == 0 or body[at - 1] == 0x0A:  # at a line start
            if len(starts) >= MAX_PARTS:
                raise FormScanError(f"more than {MAX_PARTS} multipart parts")
            line_end = body.find(b"\n", position)
            starts.append((at, len(body) if line_end < 0 else line_end + 1))


def _is_model_part(headers: str) -> bool:
    """Does this header block (folded or not) give the part the field name `model`?"""
    unfolded = re.sub(r"\r?\n[ \t]+", " ", headers)
    for line in _LINE_END.split(unfolded.encode("latin-1")):
        name, colon, value = line.decode("latin-1").partition(":")
        if colon and name.strip().lower() == "content-disposition":  # noqa: SIM102
            if any(field.casefold() == "model" for field in _field_names(value)):
                return True
    return False


def _field_names(disposition: str) -> list[str]:
    """`name` and `name*` (RFC 2231/5987) parameter values of a Content-Disposition."""
    names = []
    for key, raw in _PARAM.findall(disposition[disposition.find(";") :]):
        key = key.lower()
        value = raw.strip()
        if key == "name":
            names.append(_unquote(value))
        elif key == "name*":
            charset, _, rest = _unquote(value).partition("'")
            _, _, encoded = rest.partition("'")
            try:
                names.append(urllib.parse.unquote(encoded or value, encoding=charset or "utf-8"))
            except LookupError:
                names.append(urllib.parse.unquote(encoded or value))
    return names


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return re.sub(r"\\(.)", r"\1", value[1:-1])
    return value


def urlencoded_models(body: bytes | bytearray) -> list[FoundModel]:
    """Every `model` field of an application/x-www-form-urlencoded body, in order."""
    found: list[FoundModel] = []
    size = len(body)
    candidates = 0
    for start in range(0, size, _WINDOW):
        # A key starting in this window may end past it: let the match run 16 bytes over.
        for match in _FORM_KEY.finditer(body, start, min(size, start + _WINDOW + 16)):
            if match.start() >= start + _WINDOW:
                break  # the next window finds it
            candidates += 1
            if candidates > MAX_FORM_CANDIDATES:
                raise FormScanError(f"more than {MAX_FORM_CANDIDATES} fields named like model")
            key = urllib.parse.unquote_plus(match.group(1).decode("ascii"))
            if key.casefold() != "model":
                continue
            if len(found) >= MAX_FORM_MODEL_FIELDS:
                raise FormScanError(f"more than {MAX_FORM_MODEL_FIELDS} model fields")
            found.append(_form_value(body, match.end()))
    return found


def _form_value(body: bytes | bytearray, start: int) -> FoundModel:
    """The (percent-decoded) value that starts at `start` and runs to '&', ';' or the end."""
    limit = min(len(body), start + 3 * MAX_MODEL_BYTES + 1)  # longer is never allowed
    ends = [at for at in (body.find(b"&", start, limit), body.find(b";", start, limit)) if at >= 0]
    end = min(ends, default=limit)
    if end - start > 3 * MAX_MODEL_BYTES:
        return FoundModel(None, bytes(body[start : start + 64]).decode("latin-1") + "…")
    raw = bytes(body[start:end])
    try:
        value = urllib.parse.unquote_plus(raw.decode("ascii"), errors="strict")
    except (UnicodeDecodeError, ValueError):
        return FoundModel(None, raw[:64].decode("latin-1"))
    return FoundModel(value, shown_name(value))


def _model_value(value: bytes) -> FoundModel:
    if len(value) > MAX_MODEL_BYTES:
        return FoundModel(None, value[:64].decode("utf-8", "replace") + "…")
    try:
        name = value.decode("utf-8")
    except UnicodeDecodeError:
        return FoundModel(None, value[:64].decode("utf-8", "replace"))
    return FoundModel(name, shown_name(name))
