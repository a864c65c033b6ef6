"""Find the top-level `model` of a JSON body without building the document.

`json.loads` on a 16 MiB body of `[],[],...` builds millions of lists (hundreds of
MB). This scanner walks the bytes once, keeping only a stack of open brackets
(bounded by MAX_DEPTH) and the values of top-level keys that equal "model" in any
letter case: memory stays constant beyond the body itself. It still validates
the whole body as strict JSON, since a model the proxy misreads in a body an
upstream reads differently would walk around the allowlist.

Speed: every token is matched by a compiled regex (C), and runs of scalars in
arrays and objects (token-id lists, long message arrays) are consumed by one
match, so the Python loop runs once per container, not per value. All
quantifiers are possessive: each byte is looked at a bounded number of times.
"""

import json
import re
from dataclasses import dataclass

MAX_ITEMS = 50_000  # containers + top-level keys: bounds the Python-speed part (~0.3 s)
MAX_DEPTH = 256  # deeper than any real request; Python upstreams hit RecursionError near 1000
MAX_NUMBER_CHARS = 1000  # Python refuses ints over 4300 digits; no real request comes close
MAX_MODEL_BYTES = 1024  # a model name is short; longer values are never allowed
SHOWN_CHARS = 64  # how much of a refused value errors and logs repeat

_WS = rb"[ \t\r\n]*+"
# String contents in pieces: up to 4 KiB of plain bytes, or one escape. A match takes at
# most 256 pieces (~1 MiB), so no single regex call holds the GIL for long; longer
# strings are walked piece-run by piece-run (`_Scanner.skip_string`).
_PIECES = rb'(?:[^"\\\x00-\x1f]{1,4096}+|\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4})){0,256}+'
_STRING = rb'"' + _PIECES + rb'"'
_NUMBER = rb"-?+(?:0|[1-9][0-9]*+)(?:\.[0-9]++)?+(?:[eE][+-]?+[0-9]++)?+"
# In runs, numbers are bounded so an overlong one stops the run and is refused below.
_SHORT_NUMBER = (
    rb"-?+(?:0|[1-9][0-9]{0,299}+)(?:\.[0-9]{1,299}+)?+(?:[eE][+-]?+[0-9]{1,299}+)?+(?![0-9])"
)
_SCALAR = rb"(?:" + _STRING + rb"|" + _SHORT_NUMBER + rb"|true|false|null)"
# Runs are bounded in length so that no single match holds the GIL for long: the
# scan of a large body runs on a worker thread while the event loop keeps serving.
_RUN = rb"){0,4096}+"
_ARRAY_RUN = re.compile(_SCALAR + rb"(?:" + _WS + rb"," + _WS + _SCALAR + _RUN + _WS)
_MEMBER = _STRING + _WS + rb":" + _WS + _SCALAR
_MEMBER_RUN = re.compile(_MEMBER + rb"(?:" + _WS + rb"," + _WS + _MEMBER + _RUN + _WS)
_PLAIN_KEY_TEXT = rb'"[\x20\x21\x23-\x5b\x5d-\x7e]{0,1024}+"'  # printable ASCII, short
# A top-level key written plainly, its ':', and its value when that is a scalar.
_TOP_MEMBER = re.compile(
    rb"(" + _PLAIN_KEY_TEXT + rb")" + _WS + rb":" + _WS + rb"(" + _SCALAR + rb")?+" + _WS
)
_WS_RE = re.compile(_WS)
_WS_BYTES = b" \t\r\n"
_PIECES_RE = re.compile(_PIECES)
_NUMBER_RE = re.compile(_NUMBER)
_UTF8 = re.compile(
    rb"(?:[\x00-\x7f]++|[\xc2-\xdf][\x80-\xbf]|\xe0[\xa0-\xbf][\x80-\xbf]"
    rb"|[\xe1-\xec\xee\xef][\x80-\xbf]{2}|\xed[\x80-\x9f][\x80-\xbf]"
    rb"|\xf0[\x90-\xbf][\x80-\xbf]{2}|[\xf1-\xf3][\x80-\xbf]{3}|\xf4[\x80-\x8f][\x80-\xbf]{2})*+"
)
_PLAIN_KEY = re.compile(_PLAIN_KEY_TEXT)
_LITERALS = (b"true", b"false", b"null")
# "model" written with every character escaped is 30 bytes; a longer key never equals it.
_MAX_MODEL_KEY_BYTES = 32

Buffer = bytes | bytearray


class JsonScanError(ValueError):
    """The body is not strict JSON (or too deep / too long a number to pass on)."""


@dataclass(frozen=True, slots=True)
class FoundModel:
    """One top-level model value: `name` when it is a short string, `shown` always."""

    name: str | None
    shown: str


@dataclass(frozen=True, slots=True)
class JsonScan:
    is_object: bool
    models: tuple[FoundModel, ...]


def scan_json(body: Buffer) -> JsonScan:
    """Validate `body` as JSON and collect every top-level `model` (any case), in order."""
    found = _scan_small(body)
    if found is not None:
        return found
    scanner = _Scanner(body)
    return scanner.run()


# The fast path: small bodies whose every limit is provably met before parsing.
FAST_MAX_BYTES = 64 * 1024  # ≤ 13,108 top-level keys: the MAX_ITEMS budget cannot run out
_FAST_MAX_BRACKETS = MAX_DEPTH  # fewer brackets than this cannot nest deeper than MAX_DEPTH
# Runs of fewer than 300 digits keep every number under MAX_NUMBER_CHARS. Found by
# mapping every digit to "0" and searching (C speed; a regex search costs ~20 ns a byte).
_DIGITS_TO_ZERO = bytes.maketrans(b"123456789", b"000000000")
_LONG_DIGIT_RUN = b"0" * 300
_FAST_MAX_MODEL_CHARS = MAX_MODEL_BYTES // 12  # even written as escapes, within MAX_MODEL_BYTES
_JSON_WS = " \t\r\n"


def _reject_constant(name: str) -> object:
    raise JsonScanError(f"{name} is not JSON")


_DECODER = json.JSONDecoder(object_pairs_hook=list, parse_constant=_reject_constant)


def _scan_small(body: Buffer) -> JsonScan | None:
    """The C parser's answer for a small body, or None to let the scanner decide.

    Only a body the scanner would accept with the same models is answered here: strict
    UTF-8, within the depth, number and size limits (checked up front, so json.loads can
    neither recurse deeply nor build much), and every model a short string. Objects
    become lists of pairs, so duplicate keys all survive. Anything else, including every
    invalid body, goes to the scanner, which also words the error.
    """
    if len(body) > FAST_MAX_BYTES:
        return None
    if body.count(b"[") + body.count(b"{") >= _FAST_MAX_BRACKETS:
        return None
    if _LONG_DIGIT_RUN in body.translate(_DIGITS_TO_ZERO):
        return None
    try:
        text = body.decode("utf-8")
        document = _DECODER.decode(text)
    except (ValueError, RecursionError):
        return None  # invalid UTF-8, invalid JSON, NaN/Infinity: the scanner's call
    is_object = text.lstrip(_JSON_WS)[:1] == "{"
    if not is_object:
        return JsonScan(False, ())
    models = []
    for key, value in document:
        if key.casefold() == "model":
            if type(value) is not str or len(value) > _FAST_MAX_MODEL_CHARS:
                return None  # refused or long: the scanner words what is shown
            models.append(FoundModel(value, shown_name(value)))
    return JsonScan(True, tuple(models))


class _Scanner:
    __slots__ = ("_pending_model", "body", "budget", "end", "models", "pos")

    def __init__(self, body: Buffer) -> None:
        self.body = body
        self.end = len(body)
        self.pos = 0
        self.models: list[FoundModel] = []
        self._pending_model = False  # the top-level value being read belongs to a model key
        self.budget = MAX_ITEMS

    def fail(self, what: str) -> JsonScanError:
        return JsonScanError(f"{what} at byte {self.pos}")

    def skip_ws(self) -> None:
        body, pos = self.body, self.pos
        if pos >= self.end or body[pos] not in _WS_BYTES:
            return  # compact JSON: no regex call
        if pos + 1 >= self.end or body[pos + 1] not in _WS_BYTES:
            self.pos = pos + 1  # the single space `json.dumps` puts after ',' and ':'
            return
        match = _WS_RE.match(body, pos)
        assert match is not None  # `[...]*` always matches
        self.pos = match.end()

    def peek(self) -> int:
        return self.body[self.pos] if self.pos < self.end else -1

    def run(self) -> JsonScan:
        self.skip_ws()
        if self.pos >= self.end:
            raise self.fail("empty body")
        is_object = self.peek() == 0x7B  # "{"
        self.value(top=True)
        self.skip_ws()
        if self.pos != self.end:
            raise self.fail("extra data after the JSON value")
        return JsonScan(is_object, tuple(self.models))

    def value(self, top: bool = False) -> None:
        """One JSON value at `pos`; containers are walked iteratively with a stack."""
        first = self.peek()
        if first == 0x7B or first == 0x5B:  # "{" or "["
            self.container(top)
        else:
            self.scalar()

    def scalar(self) -> None:
        body, pos = self.body, self.pos
        first = self.peek()
        if first == 0x22:  # '"'
            self.pos = self.skip_string(pos)
            return
        if first == 0x2D or 0x30 <= first <= 0x39:  # "-" or a digit
            match = _NUMBER_RE.match(body, pos)
            if match is None:
                raise self.fail("invalid number")
            if match.end() - pos > MAX_NUMBER_CHARS:
                raise self.fail(f"number longer than {MAX_NUMBER_CHARS} characters")
            if match.end() < self.end and body[match.end()] in b"0123456789":
                raise self.fail("invalid number")
            self.pos = match.end()
            return
        for literal in _LITERALS:
            if body[pos : pos + len(literal)] == literal:
                self.pos = pos + len(literal)
                return
        raise self.fail("expected a JSON value")

    def container(self, top: bool) -> None:
        """Walk nested arrays/objects; only the top-level object's keys are inspected."""
        body = self.body
        stack = bytearray()  # b"[" / b"{" per open container
        while True:
            # At `pos`: the opening bracket of a new container.
            opener = body[self.pos]
            if len(stack) >= MAX_DEPTH:
                raise self.fail(f"nested deeper than {MAX_DEPTH} levels")
            self.spend()
            stack.append(opener)
            self.pos += 1
            self.skip_ws()
            closer = 0x5D if opener == 0x5B else 0x7D
            if self.peek() == closer:
                self.pos += 1
            elif not self.items(stack, top):
                continue  # a nested container starts at `pos`
            # The innermost container closed: resume its parent after a value.
            if not self.close_parents(stack, top):
                return

    def items(self, stack: bytearray, top: bool) -> bool:
        """Consume items of the innermost container until it closes (True) or a nested
        container starts (False, `pos` at its bracket)."""
        body = self.body
        in_object = stack[-1] == 0x7B
        top_object = in_object and top and len(stack) == 1
        closer = 0x7D if in_object else 0x5D
        while True:
            if top_object:
                member = _TOP_MEMBER.match(body, self.pos)
                if member is None:
                    self.top_level_key()  # escapes or bytes beyond ASCII in the key
                    self.skip_ws()
                    if self.peek() != 0x3A:  # ":"
                        raise self.fail("expected ':' after an object key")
                    self.pos += 1
                    self.skip_ws()
                else:
                    self.spend()
                    key = member.group(1)
                    self._pending_model = len(key) == 7 and key[1:-1].lower() == b"model"
                    if member.start(2) >= 0:  # the value was a scalar, matched already
                        if self._pending_model:
                            self.pos = member.start(2)
                            self.record_model()
                            self._pending_model = False
                        self.pos = member.end()
                        if self.after_run(closer):
                            return True
                        continue
                    self.pos = member.end()
            elif in_object:
                run = _MEMBER_RUN.match(body, self.pos)
                if run is not None:
                    self.pos = run.end()
                    if self.after_run(closer):
                        return True
                    continue
                self.key()
                self.skip_ws()
                if self.peek() != 0x3A:  # ":"
                    raise self.fail("expected ':' after an object key")
                self.pos += 1
                self.skip_ws()
            else:
                run = _ARRAY_RUN.match(body, self.pos)
                if run is not None:
                    self.pos = run.end()
                    if self.after_run(closer):
                        return True
                    continue
            first = self.peek()
            if first == 0x7B or first == 0x5B:
                return False
            if self._pending_model:
                self.record_model()
                self._pending_model = False
            self.scalar()
            if self.after_item(closer):
                return True

    def after_run(self, closer: int) -> bool:
        """After a run of scalars: True when the container closed, False after a ','."""
        first = self.peek()
        if first == closer:
            self.pos += 1
            return True
        if first == 0x2C:  # ","
            self.pos += 1
            self.skip_ws()
            return False
        raise self.fail("expected ',' or a closing bracket")

    def after_item(self, closer: int) -> bool:
        self.skip_ws()
        first = self.peek()
        if first == closer:
            self.pos += 1
            return True
        if first == 0x2C:
            self.pos += 1
            self.skip_ws()
            if self.peek() == closer:
                raise self.fail("trailing comma")
            return False
        raise self.fail("expected ',' or a closing bracket")

    def close_parents(self, stack: bytearray, top: bool) -> bool:
        """Pop the closed container; continue its parent. False when the stack is empty.

        Returns True with `pos` at a nested container's bracket when the parent goes on
        with another container.
        """
        while True:
            stack.pop()
            if not stack:
                return False
            if self._pending_model and len(stack) == 1 and top:
                # A container as the value of a top-level model key: not a string.
                self.record_model(container=True)
                self._pending_model = False
            if self.after_item(0x7D if stack[-1] == 0x7B else 0x5D):
                continue  # the parent closed too
            if not self.items(stack, top):
                return True
            # `items` closed the parent; loop to pop it.

    def key(self) -> None:
        if self.peek() != 0x22:
            raise self.fail("expected a string object key")
        self.pos = self.skip_string(self.pos)

    def skip_string(self, start: int) -> int:
        """The end of the string opening at `start`, found ~1 MiB per regex call."""
        body, at = self.body, start + 1
        while True:
            stop = _PIECES_RE.match(body, at).end()  # type: ignore[union-attr]  # {0,n} matches
            if stop < self.end and body[stop] == 0x22:
                return stop + 1
            if stop == at:  # a control character, a bad escape, or the end of the body
                self.pos = stop
                raise self.fail("invalid string")
            at = stop

    def spend(self) -> None:
        self.budget -= 1
        if self.budget < 0:
            raise self.fail(f"more than {MAX_ITEMS} arrays, objects and top-level keys")

    def top_level_key(self) -> None:
        """A key of the top-level object; notes whether it is a `model` key."""
        self.spend()
        body, start = self.body, self.pos
        plain = _PLAIN_KEY.match(body, start)
        if plain is not None:  # printable ASCII without escapes: the common case
            self.pos = end = plain.end()
            self._pending_model = end - start == 7 and body[start + 1 : end - 1].lower() == b"model"
            return
        self.key()
        end = self.pos
        if _UTF8.fullmatch(body, start + 1, end - 1) is None:
            raise self.fail("object key is not UTF-8")
        self._pending_model = (
            end - start <= _MAX_MODEL_KEY_BYTES
            and json.loads(bytes(body[start:end])).casefold() == "model"
        )

    def record_model(self, container: bool = False) -> None:
        """Record the value at `pos` (or the container just closed) of a model key."""
        if container:
            self.models.append(FoundModel(None, "<not a string>"))
            return
        body, pos = self.body, self.pos
        if self.peek() != 0x22:  # a number, true/false/null or a container: never allowed
            raw = bytes(body[pos : pos + SHOWN_CHARS]).split(b",")[0].split(b"}")[0]
            self.models.append(FoundModel(None, raw.decode("ascii", "replace")))
            return
        string_end = self.skip_string(pos)
        size = string_end - pos
        if size - 2 > MAX_MODEL_BYTES:
            shown = bytes(body[pos + 1 : pos + 1 + SHOWN_CHARS]).decode("utf-8", "replace")
            self.models.append(FoundModel(None, shown + "…"))
            return
        raw = bytes(body[pos + 1 : string_end - 1])
        try:
            name = raw.decode("utf-8") if b"\\" not in raw else json.loads(b'"' + raw + b'"')
        except UnicodeDecodeError:
            raise self.fail("string is not UTF-8") from None
        self.models.append(FoundModel(name, shown_name(name)))


def shown_name(name: str) -> str:
    """A bounded, printable form of a model name for error messages and logs."""
    text = name if len(name) <= SHOWN_CHARS else name[:SHOWN_CHARS] + "…"
    if text.isprintable() and text.isascii():
        return text
    return json.dumps(text)[1:-1]  # escapes control characters and lone surrogates
