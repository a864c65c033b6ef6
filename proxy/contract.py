"""The contract between the Pulumi program and the proxy: every setting, port and path once.

Both sides import this module: `proxy/settings.py` loads the settings declared here
from LLM_PROXY_* env vars and flags, `components/shapes/deployment.py` writes the same
env vars with `proxy_env()`, and `proxy/README.md`'s settings table is generated from it
(`settings_table()`). Values that cross as text have one encoder and one decoder here
(the model allowlist, the clients JSON), and the upstream URL one check.

Standard library only, like proxy/fingerprint.py: the Pulumi program imports it without
the proxy's dependencies, and the image ships it inside proxy/.

A new proxy setting is one line in `ProxySettings` plus its use (the proxy reads
`settings.<name>`; the Deployment passes `proxy_env(<name>=...)` when it sets it).
"""

import functools
import json
import typing
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

ENV_PREFIX = "LLM_PROXY_"

# -- ports, paths and names both sides use --------------------------------------------

API_PORT = 8080  # the proxy's default listen port, and the container's
METRICS_PORT = 9090  # the Deployment's metrics port (its NetworkPolicy opens it to the scraper)
POD_HOST = "0.0.0.0"  # noqa: S104 - in a pod the proxy listens on the pod IP
HEALTH_PATH = "/healthz"  # liveness: 200 while the process serves
READY_PATH = "/readyz"  # readiness: 200 with a key, not draining, not disabled
METRICS_PATH = "/metrics"
KEY_MOUNT_DIR = "/etc/llm-gateway/secret"  # the key Secret's volume, no subPath
KEY_FILE_NAME = "apiKey"  # the Secret's data key, so also the file's name in the mount
KEY_FILE = f"{KEY_MOUNT_DIR}/{KEY_FILE_NAME}"
# The pod's API credentials, where every in-pod client looks for them: the Secret watch
# (key_source api) and the JWKS fetch (identity on) share this one mount.
POD_CREDENTIALS_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
TOKEN_FILE_NAME = "token"  # noqa: S105 - a file name, not a secret
CA_FILE_NAME = "ca.crt"
NAMESPACE_FILE_NAME = "namespace"
DEFAULT_UPSTREAM = "https://api.openai.com/v1"
DEFAULT_DRAIN_SECONDS = 20
# Sized for held streams (bench/RESULTS.md, "Held streams"): 2,048 open streams and the
# request-body budget fit the Deployment's default 256Mi limit. Past it: a fast 503.
DEFAULT_MAX_IN_FLIGHT = 2048


@dataclass(frozen=True)
class Spec:
    """What a setting means (the README's words) and the bounds the proxy enforces.

    `shown`: the README's default column when the plain default would mislead.
    """

    doc: str
    shown: str | None = None
    ge: float | None = None
    le: float | None = None
    gt: float | None = None
    min_length: int | None = None


KeySource = Literal["file", "api"]
IdentityMode = Literal["off", "attribute", "require"]
_API = "`api`: "


@dataclass
class ProxySettings:
    """Every proxy setting: type, default, bounds and meaning, in the README's order.

    The env var is LLM_PROXY_<NAME>, the `serve` flag --<name-with-dashes>. A
    dataclass, so that proxy.settings.Settings (pydantic) may narrow a field's type.
    """

    # fmt: off
    host: Annotated[str, Spec("listen address", "`127.0.0.1` (image: `0.0.0.0`)")] = "127.0.0.1"
    port: Annotated[int, Spec("listen port (`0` picks a free one)", ge=0, le=65535)] = API_PORT
    upstream: Annotated[str, Spec("OpenAI-compatible base URL including `/v1`; refused at start if it has no host, a user/password, a query or a fragment (the message never repeats the URL)")] = DEFAULT_UPSTREAM
    key_file: Annotated[Path, Spec("file holding the key (the Secret volume, no subPath)")] = Path(KEY_FILE)
    key_source: Annotated[KeySource, Spec("`file`: the key file alone; `api`: watch the Secret `LLM_PROXY_KEY_SECRET` through the Kubernetes API (its entry named like the key file, e.g. `apiKey`) and serve its key within a moment of an update, the key file as the fallback (see \"Key from the API\"); the Deployment sets `api` unless `proxy.keySource` is `file`")] = "file"
    key_secret: Annotated[str | None, Spec(_API + "the Secret to watch (required then)")] = None
    key_secret_namespace: Annotated[str | None, Spec(_API + "its namespace (default: `namespace` in the credentials directory)", "the pod's")] = None
    kube_api: Annotated[str | None, Spec(_API + "the API server", "`https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT`")] = None
    kube_credentials_dir: Annotated[Path, Spec("`api`: `token` (re-read for every request: the kubelet rotates it), `ca.crt`, `namespace`; the Deployment mounts them here, and the JWKS fetch's defaults (`LLM_PROXY_IDENTITY_TOKEN_FILE`, `_CA_FILE`) are the same files")] = Path(POD_CREDENTIALS_DIR)
    key_api_grace: Annotated[float, Spec(_API + "once the watch has been broken this long (s), serve the key file", ge=0)] = 30.0
    metrics_port: Annotated[int | None, Spec("serve `/metrics` on this port and only there (the API port then answers 404 for it; this port answers nothing else); the Deployment sets 9090 so the scraper's NetworkPolicy rule never opens `/v1`. Unset: `/metrics` on the API port", ge=0, le=65535)] = None
    require_key: Annotated[bool, Spec("exit 1 at start, with one line saying why (missing, unreadable, empty, two lines…), when the key file holds no usable key; the Deployment sets it. Without it the proxy starts unready and waits for the file")] = False
    allowed_models: Annotated[tuple[str, ...], Spec("comma-separated (or JSON list) model allowlist; see \"Allowlist: fails closed\"", "empty = all")] = ()
    allow_unpoliced_paths: Annotated[bool, Spec("with an allowlist, still forward endpoints whose model the proxy cannot check (files, batches, assistants, …)")] = False
    max_in_flight: Annotated[int, Spec("concurrent `/v1` calls of one worker, streams included (2,048 held streams fit the Deployment's default 256Mi: `bench/RESULTS.md`); beyond: 503 + `Retry-After: 1`", ge=1)] = DEFAULT_MAX_IN_FLIGHT
    max_body_bytes: Annotated[int, Spec("request body cap; beyond: 413", ge=1)] = 16 * 1024 * 1024
    max_buffered_bytes: Annotated[int, Spec("request-body bytes all calls together may hold in memory (bodies read whole to find the model), counted as they arrive, never from the declared `Content-Length`; beyond: 503 + `Retry-After: 1`, except that a call alone always fits", ge=1)] = 64 * 1024 * 1024
    connect_timeout: Annotated[float, Spec("seconds to connect upstream; beyond: 504", gt=0)] = 5.0
    read_timeout: Annotated[float, Spec("seconds of upstream silence (before headers or between chunks); 504 before headers", gt=0)] = 600.0
    disabled: Annotated[bool, Spec("kill switch: every `/v1` call gets 503, `/readyz` fails")] = False
    body_timeout: Annotated[float, Spec("seconds for a whole request body to arrive; beyond: 408", gt=0)] = 60.0
    min_body_rate: Annotated[float, Spec("bytes/s a request body must keep after its first 5 s (the whole body counts: `received ≥ rate × (elapsed − 5 s)`); slower: 408, slot and buffer freed. `0`: only `LLM_PROXY_BODY_TIMEOUT` applies", ge=0)] = 65536.0
    idle_timeout: Annotated[float, Spec("seconds an idle keep-alive connection stays open after its last response (API and metrics ports); keep it above your clients' own pool expiry (httpx/openai: 5 s)", gt=0)] = 60.0
    header_timeout: Annotated[float, Spec("seconds for a request head to arrive (after connect, or between keep-alive requests); beyond: connection closed", gt=0)] = 10.0
    drain_timeout: Annotated[float, Spec("on SIGTERM, how long in-flight calls may finish; stop completes within this + ~1 s, so set `terminationGracePeriodSeconds` a few seconds above it", ge=0)] = DEFAULT_DRAIN_SECONDS
    key_poll_interval: Annotated[float, Spec("how often the key file is re-read (s)", gt=0)] = 0.25
    workers: Annotated[int, Spec("worker processes sharing the port; `1` is a single process (no supervisor, no fork). Set it to the container's CPU limit in whole cores; see \"Workers\"", ge=1)] = 1
    identity_mode: Annotated[IdentityMode, Spec("caller identity: `off`, `attribute` (a valid ServiceAccount token is attributed, none is `anonymous`) or `require` (401 without a valid token, 403 for an unlisted app); see the project README, \"Who calls\"")] = "off"
    identity_audience: Annotated[str, Spec("the `aud` callers' tokens must carry", min_length=1)] = "llm-gateway"
    identity_issuer: Annotated[str | None, Spec("the `iss` they must carry; unset: read from the API server's `/.well-known/openid-configuration`")] = None
    identity_jwks_url: Annotated[str | None, Spec("where the signing keys are fetched (the discovery document from the same host)", "the API server's `/openid/v1/jwks` (from `KUBERNETES_SERVICE_HOST`/`_PORT`)")] = None
    identity_token_file: Annotated[Path | None, Spec("the proxy's own token for that fetch, re-read at each fetch")] = Path(POD_CREDENTIALS_DIR, TOKEN_FILE_NAME)
    identity_ca_file: Annotated[Path | None, Spec("CA for the API server's certificate")] = Path(POD_CREDENTIALS_DIR, CA_FILE_NAME)
    identity_shares: Annotated[int, Spec("replicas sharing each budget: each worker enforces `ceil(limit / (shares × workers))`", ge=1)] = 1
    clients: Annotated[tuple[object, ...], Spec("JSON list of apps: `{\"name\", \"namespace\", \"serviceAccount\", \"allowedModels\"?, \"requestsPerMinute\"?, \"tokensPerMinute\"?, \"tokensPerDay\"?}`", "`[]`")] = ()
    # fmt: on


@functools.cache
def specs() -> dict[str, tuple[Any, Spec, Any]]:
    """Setting name -> (its type, its Spec, its default), in declaration order."""
    hints = typing.get_type_hints(ProxySettings, include_extras=True)
    table = {}
    for name, hint in hints.items():
        kind, spec = typing.get_args(hint)
        table[name] = (kind, spec, getattr(ProxySettings, name))
    return table


def env_name(setting: str) -> str:
    return f"{ENV_PREFIX}{setting.upper()}"


def flag_name(setting: str) -> str:
    return "--" + setting.replace("_", "-")


# -- values that cross as text ---------------------------------------------------------


def encode_models(models: Iterable[str]) -> str:
    """The allowlist as LLM_PROXY_ALLOWED_MODELS carries it: comma-separated."""
    names = list(models)
    if any("," in name or not name.strip() for name in names):
        raise ValueError("model names must be non-empty and hold no comma")
    return ",".join(names)


def decode_models(text: str) -> tuple[str, ...]:
    """ "a,b" or '["a","b"]' (what a person may type) -> names; blanks dropped."""
    text = text.strip()
    items = json.loads(text) if text.startswith("[") else text.split(",")
    return tuple(str(item).strip() for item in items if str(item).strip())


def encode_clients(clients: Iterable[Mapping[str, Any]]) -> str:
    """The apps as LLM_PROXY_CLIENTS carries them: compact JSON, keys sorted (stable)."""
    return json.dumps(list(clients), separators=(",", ":"), sort_keys=True)


def decode_clients(text: str) -> tuple[object, ...]:
    """JSON list -> its items (the proxy validates each); an empty string is no apps."""
    if not text.strip():
        return ()
    items = json.loads(text)
    if not isinstance(items, list):
        raise ValueError("must be a JSON list of apps")
    return tuple(items)


def check_upstream_url(value: str) -> str:
    """The upstream base URL without a trailing slash, or ValueError saying what is wrong.

    An absolute http(s) URL with a host and a valid port, no credentials, query or
    fragment (both sides' rule; the Pulumi program also asks for the API base path).
    The message never repeats the value: it may hold a password.
    """
    try:
        parts = urlsplit(value)
        _ = parts.port
    except ValueError:
        raise ValueError("is not a valid URL (bad host or port); use e.g. "
                         f"{DEFAULT_UPSTREAM}") from None  # fmt: skip
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"must be an absolute http(s) URL such as {DEFAULT_UPSTREAM}")
    if not parts.hostname:
        raise ValueError(f"must be an absolute http(s) URL with a host, e.g. {DEFAULT_UPSTREAM}")
    if parts.username is not None or parts.password is not None:
        raise ValueError(
            "must not carry credentials (a user or password): the key comes from the key file"
        )
    if parts.query or "?" in value:
        raise ValueError("must not carry a query string (credentials often ride in one)")
    if parts.fragment or "#" in value:
        raise ValueError("must not carry a fragment")
    return value.rstrip("/")


def _encode(kind: Any, value: object) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str | int | float | Path):
        return str(value)
    if kind == tuple[str, ...] and isinstance(value, Sequence):
        return encode_models(str(item) for item in value)
    if isinstance(value, Sequence):
        return encode_clients(value)
    raise TypeError(f"cannot pass {type(value).__name__} as a proxy setting")


def proxy_env(**values: object) -> dict[str, str]:
    """LLM_PROXY_* env vars for the given settings (None: left unset), each encoded the
    way the proxy decodes it. An unknown name is a TypeError, not an ignored variable."""
    table = specs()
    env = {}
    for name, value in values.items():
        if name not in table:
            raise TypeError(f"{name!r} is not a proxy setting (see proxy/contract.py)")
        if value is not None:
            env[env_name(name)] = _encode(table[name][0], value)
    return env


# -- the README table ------------------------------------------------------------------


def _shown_default(default: object) -> str:
    if default is None:
        return "unset"
    if isinstance(default, bool):
        return f"`{str(default).lower()}`"
    if isinstance(default, float) and default.is_integer():
        return f"`{int(default)}`"
    return f"`{default}`"


def settings_table() -> str:
    """proxy/README.md's settings table (a test keeps the README in step)."""
    rows = ["| env var | flag | default | meaning |", "|---|---|---|---|"]
    for name, (_, spec, default) in specs().items():
        shown = spec.shown or _shown_default(default)
        rows.append(f"| `{env_name(name)}` | `{flag_name(name)}` | {shown} | {spec.doc} |")
    return "\n".join(rows)
