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
from dataclasses import dataclass

from proxy import errors
from proxy.form_scan import FormScanError, boundary_of, multipart_models, urlencoded_models
from proxy.json_scan import FoundModel, JsonScanError, scan_json

THREAD_THRESHOLD = 64 * 1024  # below this, a scan costs less than a thread hop


@dataclass(frozen=True, slots=True)
class BodyModels:
    """What a body says: the models found, and why a reading failed (if one did).

    `unreadable` is set when the declared form could not be read (too many parts, no
    boundary...), or nothing at all could be: with an allowlist either refuses a
    model call, since what an upstream reads there is unknown.
    """

    models: tuple[FoundModel, ...]
    unreadable: str | None = None


def is_json_type(content_type: str) -> bool:
    return content_type == "application/json" or content_type.endswith("+json")


def _looks_like_json_object(body: bytes | bytearray) -> bool:
    stripped = body[:64].lstrip()
    return stripped[:1] == b"{" or (len(stripped) == 0 and len(body) > 64)


def read_models(content_type: str, content_type_header: str, body: bytes | bytearray) -> BodyModels:
    """Models in `body`; raises 400 invalid_json when declared JSON is not JSON."""
    if is_json_type(content_type):
        try:
            return BodyModels(scan_json(body).models)
        except JsonScanError as exc:
            raise errors.malformed_json(str(exc)) from None
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
    if _looks_like_json_object(body):
        try:
            found += scan_json(body).models
        except JsonScanError as exc:
            if not found:
                unreadable = unreadable or f"body is neither a form nor JSON: {exc}"
    return BodyModels(tuple(found), unreadable)


async def read_models_off_loop(
    content_type: str, content_type_header: str, body: bytes | bytearray
) -> BodyModels:
    if len(body) < THREAD_THRESHOLD:
        return read_models(content_type, content_type_header, body)
    return await asyncio.to_thread(read_models, content_type, content_type_header, body)
