"""Which models a request body names, read every way an upstream might read it.

An upstream may ignore the Content-Type (Go servers often decode JSON whatever it
says; FastAPI parses JSON when it is missing), so a body that looks like a JSON
object is also read as JSON whatever it is declared as; declared forms are read
as forms too. Every model any reading finds must be allowed.

Large bodies are scanned on a worker thread: the scan is linear and bounded
(json_scan.MAX_ITEMS), but a 16 MiB body still takes tens of milliseconds that
/healthz and other calls should not wait for.
"""

import asyncio
import itertools
import json
import re
from dataclasses import dataclass

from proxy import errors
from proxy.policy.form_scan import FormScanError, boundary_of, multipart_models, urlencoded_models
from proxy.policy.json_scan import FoundModel, JsonScanError, scan_json, shown_name

THREAD_THRESHOLD = 64 * 1024  # below this, a scan costs less than a thread hop
# A JSON string spelling "model" in any letter case, any letter possibly \u-escaped. Inside
# a JSON string a quote is always escaped, so this finds every key that could be "model"
# (and some values): more of them than top-level model keys means a nested one.
_MODEL_TOKEN = re.compile(
    rb'"(?:[mM]|\\u00[46][dD])(?:[oO]|\\u00[46][fF])(?:[dD]|\\u00[46]4)'
    rb'(?:[eE]|\\u00[46]5)(?:[lL]|\\u00[46][cC])"'
)
NESTED_DECODE_LIMIT = 1024 * 1024  # bodies with a nested "model" are decoded up to this size
_PAIRS = json.JSONDecoder(object_pairs_hook=list)


@dataclass(frozen=True, slots=True)
class BodyModels:
    """What a body says: the models found, and why a reading failed (if one did).

    `unreadable` is set when the declared form could not be read (too many parts, no
    boundary...), or nothing at all could be: with an allowlist either refuses a
    model call, since what an upstream reads there is unknown.
    """

    models: tuple[FoundModel, ...]
    unreadable: str | None = None
    # With `tools=True`: models the body's tools name (see tool_models); None when
    # they could not be read (a large body with a nested `model`).
    tools: tuple[FoundModel, ...] | None = ()


def is_json_type(content_type: str) -> bool:
    return content_type == "application/json" or content_type.endswith("+json")


def _looks_like_json_object(body: bytes | bytearray) -> bool:
    stripped = body[:64].lstrip()
    return stripped[:1] == b"{" or (len(stripped) == 0 and len(body) > 64)


def read_models(
    content_type: str, content_type_header: str, body: bytes | bytearray, tools: bool = False
) -> BodyModels:
    """Models in `body`; raises 400 invalid_json when declared JSON is not JSON.

    `tools`: also read the models a JSON body's tools name (an allowlist is set).
    """
    if is_json_type(content_type):
        try:
            models = scan_json(body).models
        except JsonScanError as exc:
            raise errors.malformed_json(str(exc)) from None
        return BodyModels(models, None, tool_models(body, len(models)) if tools else ())
    found: list[FoundModel] = []
    unreadable: str | None = None
    try:
        if content_type == "multipart/form-data":
            boundary = boundary_of(content_type_header)
            if boundary:
                found += multipart_models(body, boundary)
            else:
                unreadable = "multipart body without one clear boundary"
        elif content_type == "application/x-www-form-urlencoded":
            found += urlencoded_models(body)
    except FormScanError as exc:
        unreadable = str(exc)
    in_tools: tuple[FoundModel, ...] | None = ()
    if _looks_like_json_object(body):
        try:
            top = scan_json(body).models
        except JsonScanError as exc:
            if not found:
                unreadable = unreadable or f"body is neither a form nor JSON: {exc}"
        else:
            found += top
            in_tools = tool_models(body, len(top)) if tools else ()
    return BodyModels(tuple(found), unreadable, in_tools)


async def read_models_off_loop(
    content_type: str, content_type_header: str, body: bytes | bytearray, tools: bool = False
) -> BodyModels:
    if len(body) < THREAD_THRESHOLD:
        return read_models(content_type, content_type_header, body, tools)
    return await asyncio.to_thread(read_models, content_type, content_type_header, body, tools)


def tool_models(body: bytes | bytearray, top_level: int) -> tuple[FoundModel, ...] | None:
    """Models named by the tools of a JSON body already validated by the scanner.

    A Responses call runs more than its top-level model: `tools: [{"type":
    "image_generation", "model": "gpt-image-1"}]` runs that one too. Most bodies
    have no `"model"` string beyond their `top_level` keys and cost one regex
    search; the others are decoded (strict JSON, at most NESTED_DECODE_LIMIT bytes)
    and every `model` key (any case) of every object in every top-level `tools`
    array (any case, duplicates included) is returned. None: too large to decode,
    which with an allowlist is refused.
    """
    tokens = _MODEL_TOKEN.finditer(body)  # counted lazily: stops one past the top level
    if sum(1 for _ in itertools.islice(tokens, top_level + 1)) <= top_level:
        return ()
    if len(body) > NESTED_DECODE_LIMIT:
        return None
    try:
        document = _PAIRS.decode(bytes(body).decode("utf-8"))
    except ValueError:
        return None  # the scanner accepted it, so this should not happen: refuse
    found: list[FoundModel] = []
    if not isinstance(document, list):
        return ()
    for key, tools in document:
        if key.casefold() != "tools" or not isinstance(tools, list):
            continue
        for tool in tools:
            if not isinstance(tool, list):
                continue  # not an object
            for name, value in tool:
                if name.casefold() == "model":
                    if isinstance(value, str):
                        found.append(FoundModel(value, shown_name(value)))
                    else:
                        found.append(FoundModel(None, "<not a string>"))
    return tuple(found)
