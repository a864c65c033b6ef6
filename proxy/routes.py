"""What the proxy knows about a /v1 path: its metric label and how the allowlist treats it.

One fixed table of OpenAI endpoints serves two purposes. The metric `path` label
comes only from it (anything unknown is `other`), so a client cannot grow the
label set. And the allowlist needs to know, per method and path, whether a call
runs a model named in its body (`MODEL`: the model must be found and allowed),
runs none (`NO_MODEL`: listing models, reading or deleting a stored response), or
is something the proxy cannot police (`UNPOLICED`: files, batches, assistants,
fine-tuning... whose model hides in an uploaded file or a stored object). Anything
the table does not know is `UNPOLICED`: with an allowlist the proxy fails closed.
"""

import enum
from dataclasses import dataclass

from proxy.bounded_cache import remember


class Policy(enum.Enum):
    MODEL = "model"
    NO_MODEL = "no_model"
    UNPOLICED = "unpoliced"


@dataclass(frozen=True, slots=True)
class Route:
    label: str
    policy: Policy


OTHER = "other"

# Resources and, where the API nests them, their known sub-resources. Ids that follow
# collapse into the label, so `/v1/responses/resp_123/input_items` is `/v1/responses`.
_RESOURCES: dict[str, frozenset[str]] = {
    "chat": frozenset({"completions"}),
    "completions": frozenset(),
    "embeddings": frozenset(),
    "responses": frozenset(),
    "models": frozenset(),
    "moderations": frozenset(),
    "audio": frozenset({"transcriptions", "translations", "speech"}),
    "images": frozenset({"generations", "edits", "variations"}),
    "files": frozenset(),
    "uploads": frozenset(),
    "batches": frozenset(),
    "assistants": frozenset(),
    "threads": frozenset(),
    "vector_stores": frozenset(),
    "fine_tuning": frozenset({"jobs", "checkpoints"}),
    "evals": frozenset(),
    "containers": frozenset(),
    "conversations": frozenset(),
    "realtime": frozenset({"sessions", "transcription_sessions", "client_secrets"}),
    "organization": frozenset(),
    "videos": frozenset(),
}

# POST to exactly these runs the model its body names.
_MODEL_PATHS = frozenset(
    {
        "/v1/chat/completions",
        "/v1/completions",
        "/v1/embeddings",
        "/v1/responses",
        "/v1/responses/input_tokens",
        "/v1/moderations",
        "/v1/audio/transcriptions",
        "/v1/audio/translations",
        "/v1/audio/speech",
        "/v1/images/generations",
        "/v1/images/edits",
        "/v1/images/variations",
    }
)
# Resources whose calls other than the model ones above run no model when read or
# deleted: listing models, fetching a stored chat completion or response.
_READABLE = frozenset({"chat", "completions", "embeddings", "responses", "models", "moderations"})
_READ_METHODS = frozenset({"GET", "HEAD"})


def path_label(path: str) -> str:
    """A label from the fixed table: `/v1/<resource>[/<sub-resource>]`, else `other`."""
    parts = path.split("/", 4)  # ["", "v1", resource, sub, rest]
    if len(parts) < 3 or parts[1] != "v1":
        return OTHER
    subs = _RESOURCES.get(parts[2])
    if subs is None:
        return OTHER
    if len(parts) > 3 and parts[3] in subs:
        return f"/v1/{parts[2]}/{parts[3]}"
    return f"/v1/{parts[2]}"


# Routes already worked out, per (method, path). Most traffic repeats a few paths;
# paths with ids are endless: see proxy.bounded_cache for how it stays small.
_MAX_CACHED = 1024
_known: dict[tuple[str, str], Route] = {}


def classify(method: str, path: str) -> Route:
    """The label and allowlist policy of one call (`path` decoded, starting `/v1/`)."""
    route = _known.get((method, path))
    if route is None:
        route = _classify(method, path)
        remember(_known, (method, path), route, len(method) + len(path), _MAX_CACHED)
    return route


def _classify(method: str, path: str) -> Route:
    label = path_label(path)
    if path in _MODEL_PATHS:
        policy = Policy.MODEL if method == "POST" else Policy.NO_MODEL
        return Route(label, policy)
    parts = path.split("/")
    resource = parts[2] if len(parts) > 2 else ""
    if resource in _READABLE and method in _READ_METHODS:
        return Route(label, Policy.NO_MODEL)
    if _is_stored_object_call(method, parts):
        return Route(label, Policy.NO_MODEL)
    return Route(label, Policy.UNPOLICED)


def _is_stored_object_call(method: str, parts: list[str]) -> bool:
    """Deleting or cancelling a stored response, deleting or tagging a stored completion."""
    if len(parts) == 4 and parts[2] == "responses" and parts[3]:
        return method == "DELETE"
    if len(parts) == 5 and parts[2] == "responses" and parts[3]:
        return method == "POST" and parts[4] == "cancel"
    if len(parts) == 5 and parts[2:4] == ["chat", "completions"] and parts[4]:
        return method in ("DELETE", "POST")  # POST only updates its metadata
    return False
