"""The proxy's routes as data: which paths it answers, and what each /v1 call does.

`LOCAL` maps the paths the proxy answers itself to what answers them (proxy.app turns
it into its dispatch table). Everything under `/v1/` is forwarded, and one fixed table
of OpenAI endpoints, `ENDPOINTS`, says per method and path whether a call runs a model
named in its body (`MODEL`: the model must be found and allowed), runs none
(`NO_MODEL`: listing models, reading or deleting a stored response), or is something
the proxy cannot police (`UNPOLICED`: files, batches, assistants, fine-tuning... whose
model hides in an uploaded file or a stored object). Anything the table does not know
is `UNPOLICED`: with an allowlist the proxy fails closed. The metric `path` label comes
only from `_RESOURCES` (anything unknown is `other`), so a client cannot grow the label
set. A new endpoint is a row here.
"""

import enum
from dataclasses import dataclass

from proxy import contract
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


class Local(enum.Enum):
    """What answers a path the proxy serves itself."""

    HEALTH = "healthz"
    READY = "readyz"
    METRICS = "metrics"  # on the API port only while no metrics port is set


FORWARDED_PREFIX = "/v1/"
# The probe and metrics paths the Deployment also names (proxy/contract.py).
LOCAL: dict[str, Local] = {
    contract.HEALTH_PATH: Local.HEALTH,
    contract.READY_PATH: Local.READY,
    contract.METRICS_PATH: Local.METRICS,
}

ANY: frozenset[str] = frozenset()  # a row for every method
_POST = frozenset({"POST"})
_READ = frozenset({"GET", "HEAD"})


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One row of the /v1 table: the paths it matches, for which methods, and what it does.

    `pattern` is the path's segments after `/v1/`: a name matches itself, `*` one
    non-empty segment (an id), and a last `**` whatever follows (nothing included).
    """

    pattern: tuple[str, ...]
    methods: frozenset[str]
    policy: Policy

    def matches(self, method: str, segments: list[str]) -> bool:
        if self.methods and method not in self.methods:
            return False
        pattern = self.pattern
        if pattern[-1] == "**":
            pattern = pattern[:-1]
            if len(segments) < len(pattern):
                return False
        elif len(segments) != len(pattern):
            return False
        return all(
            p == s or (p == "*" and s != "") for p, s in zip(pattern, segments, strict=False)
        )


def _runs_model(*pattern: str) -> tuple[Endpoint, Endpoint]:
    """POST runs the model its body names; any other method on that path runs none."""
    return Endpoint(pattern, _POST, Policy.MODEL), Endpoint(pattern, ANY, Policy.NO_MODEL)


def _readable(resource: str) -> Endpoint:
    """Reading anything under a resource runs no model (listing models, a stored response)."""
    return Endpoint((resource, "**"), _READ, Policy.NO_MODEL)


# First match wins; no match is UNPOLICED.
ENDPOINTS: tuple[Endpoint, ...] = (
    *_runs_model("chat", "completions"),
    *_runs_model("completions"),
    *_runs_model("embeddings"),
    *_runs_model("responses"),
    *_runs_model("responses", "input_tokens"),
    *_runs_model("moderations"),
    *_runs_model("audio", "transcriptions"),
    *_runs_model("audio", "translations"),
    *_runs_model("audio", "speech"),
    *_runs_model("images", "generations"),
    *_runs_model("images", "edits"),
    *_runs_model("images", "variations"),
    *(
        _readable(r)
        for r in ("chat", "completions", "embeddings", "responses", "models", "moderations")
    ),
    # Calls on stored objects that run no model: deleting or cancelling a stored
    # response, deleting a stored chat completion or updating its metadata (POST).
    Endpoint(("responses", "*"), frozenset({"DELETE"}), Policy.NO_MODEL),
    Endpoint(("responses", "*", "cancel"), _POST, Policy.NO_MODEL),
    Endpoint(("chat", "completions", "*"), frozenset({"DELETE", "POST"}), Policy.NO_MODEL),
)


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
    segments = path.split("/")[2:]  # after "", "v1"
    for endpoint in ENDPOINTS:
        if endpoint.matches(method, segments):
            return Route(path_label(path), endpoint.policy)
    return Route(path_label(path), Policy.UNPOLICED)
