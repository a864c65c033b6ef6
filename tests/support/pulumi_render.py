"""Run __main__.py under Pulumi's mock runtime and record everything it declares.

Config is fed the way the Pulumi CLI feeds a real run (PULUMI_CONFIG and
PULUMI_CONFIG_SECRET_KEYS), so `load_config` takes the same path as in `pulumi up`.
Each render runs in its own contextvars context, so renders do not share state.
"""

import asyncio
import contextlib
import contextvars
import copy
import json
import os
import runpy
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import yaml
from pulumi.runtime.mocks import MockMonitor
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

REPO_ROOT = Path(__file__).resolve().parents[2]
MAIN = REPO_ROOT / "__main__.py"
STACKS = ("dev", "staging", "prod")
NAMESPACE = "llm-gateway"
# How the SDK marks a secret inside serialized properties (pulumi.runtime.rpc).
_SIG_KEY = "4dabf18193072939515e22adb298388d"
_SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"
_ENV_KEYS = ("PULUMI_CONFIG", "PULUMI_CONFIG_SECRET_KEYS", "PULUMI_K8S_ENABLE_SECRET_MUTABLE")


# What a user sets with `pulumi config set --path proxy.image …`; the stack files name none.
TEST_IMAGE = "registry.example.com/llm-proxy:test"


def fake_key(label: str) -> str:
    """A recognisable fake provider key; never a real-looking one."""
    return f"sk-test-FAKEKEY-{label}"


@dataclass(frozen=True)
class RenderedResource:
    """One registered resource: its inputs with secrets unwrapped, and where secrets were."""

    urn: str
    typ: str
    name: str
    custom: bool
    inputs: dict[str, Any]
    secret_paths: tuple[str, ...]
    provider: str
    parent_urn: str
    protect: bool
    dependencies: tuple[str, ...] = ()

    @property
    def kind(self) -> str | None:
        kind = self.inputs.get("kind")
        return kind if isinstance(kind, str) else None

    @property
    def object_name(self) -> str | None:
        name = self.inputs.get("metadata", {}).get("name")
        return name if isinstance(name, str) else None

    @property
    def is_k8s_object(self) -> bool:
        return self.typ.startswith("kubernetes:") and "kind" in self.inputs


@dataclass
class Rendered:
    """Everything one program run declared and exported."""

    resources: list[RenderedResource]
    outputs: dict[str, Any]
    secret_outputs: set[str] = field(default_factory=set)
    error: BaseException | None = None

    def k8s_objects(self) -> list[RenderedResource]:
        return [r for r in self.resources if r.is_k8s_object]

    def of_kind(self, kind: str) -> list[RenderedResource]:
        return [r for r in self.k8s_objects() if r.kind == kind]

    def one(self, kind: str) -> RenderedResource:
        found = self.of_kind(kind)
        assert len(found) == 1, f"expected one {kind}, found {[r.name for r in found]}"
        return found[0]

    def ancestors(self, resource: RenderedResource) -> list[str]:
        """Types of the resource's ancestors, innermost first, up to the stack."""
        by_urn = {r.urn: r for r in self.resources}
        types = []
        parent = by_urn.get(resource.parent_urn)
        while parent is not None:
            types.append(parent.typ)
            parent = by_urn.get(parent.parent_urn)
        return types

    def of_type(self, typ: str) -> list[RenderedResource]:
        return [r for r in self.resources if r.typ == typ]

    def manifests(self) -> list[dict[str, Any]]:
        return [r.inputs for r in self.k8s_objects()]


def _normalise(value: Any, path: str, secrets: list[str]) -> Any:
    """Unwrap secret markers (recording their paths) and turn integral floats into ints."""
    if isinstance(value, dict):
        if value.get(_SIG_KEY) == _SECRET_SIG:
            secrets.append(path or "<root>")
            return _normalise(value.get("value"), path, secrets)
        return {k: _normalise(v, f"{path}.{k}" if path else k, secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [_normalise(v, f"{path}[{i}]", secrets) for i, v in enumerate(value)]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


class _Recorder(pulumi.runtime.Mocks):
    """Echo inputs back as state, as an API server with nothing to add would."""

    def new_resource(
        self, args: pulumi.runtime.MockResourceArgs
    ) -> tuple[str | None, dict[str, Any]]:
        return f"{args.name}_id", dict(args.inputs)

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], None]:
        return {}, None  # the program invokes nothing


def stack_file_config(stack: str) -> dict[str, Any]:
    """The `config:` map of stacks/Pulumi.<stack>.yaml, keys without the namespace."""
    data = yaml.safe_load((REPO_ROOT / "stacks" / f"Pulumi.{stack}.yaml").read_text())
    prefix = f"{NAMESPACE}:"
    return {k.removeprefix(prefix): v for k, v in (data.get("config") or {}).items()}


_DROP = object()  # an override value meaning "remove this key"


def _set_path(config: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    node = config
    for part in parents:
        node = node.setdefault(part, {})
    if value is _DROP:
        node.pop(leaf, None)
    else:
        node[leaf] = value


def without(*keys: str) -> dict[str, Any]:
    """Overrides that remove keys, for render(..., overrides=without("openaiKey"))."""
    return dict.fromkeys(keys, _DROP)


def _cli_value(value: Any) -> str:
    """A config value as the CLI hands it to the program: strings as-is, the rest JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value)


@contextlib.contextmanager
def _cli_env(values: Mapping[str, str]) -> Iterator[None]:
    """Set the env vars the CLI would set for one run; restore the previous ones after."""
    saved = {k: os.environ.get(k) for k in _ENV_KEYS}
    try:
        for k in _ENV_KEYS:
            os.environ.pop(k, None)
        os.environ.update(values)
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


class _ParentRecordingMonitor(MockMonitor):
    """The SDK's mock monitor, also noting each registration's parent URN."""

    def __init__(self) -> None:
        super().__init__(_Recorder())
        self.parents: dict[tuple[str, str], str] = {}
        self.protected: set[tuple[str, str]] = set()
        self.dependencies: dict[tuple[str, str], tuple[str, ...]] = {}

    def RegisterResource(self, request: Any) -> Any:
        self.parents[(request.type, request.name)] = request.parent
        self.dependencies[(request.type, request.name)] = tuple(request.dependencies)
        if request.protect:
            self.protected.add((request.type, request.name))
        return super().RegisterResource(request)  # type: ignore[no-untyped-call]


def _run_main() -> None:
    runpy.run_path(str(MAIN), run_name="__main__")


def _run_program(stack: str, main: Callable[[], None]) -> Rendered:
    # A loop of our own: pytest-asyncio (the proxy tests) closes and unsets the
    # default loop, and Pulumi's runtime asks for the current one.
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        return _run_program_in_loop(stack, main)
    finally:
        asyncio.set_event_loop(None)
        loop.close()


def _run_program_in_loop(stack: str, main: Callable[[], None]) -> Rendered:
    monitor = _ParentRecordingMonitor()
    pulumi.runtime.set_mocks(
        monitor.mocks, project="llm-gateway", stack=stack, preview=False, monitor=monitor
    )
    seen: list[pulumi.runtime.MockResourceArgs] = []
    original = monitor.mocks.new_resource

    def record(args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        seen.append(args)
        return original(args)

    monitor.mocks.new_resource = record  # type: ignore[method-assign]
    outputs: dict[str, Any] = {}
    secret_outputs: set[str] = set()

    async def program() -> None:
        main()
        root = pulumi.runtime.settings.get_root_resource()
        assert root is not None
        for name, value in root.outputs.items():  # type: ignore[attr-defined]
            out = pulumi.Output.from_input(value)
            outputs[name] = await out.future()
            if await out.is_secret():
                secret_outputs.add(name)

    error: BaseException | None = None
    try:
        _sync_await(run_pulumi_func(program))
    except Exception as exc:
        error = exc
    urns = {
        (reg.urn.split("::")[2].split("$")[-1], reg.urn.rsplit("::", 1)[1]): reg.urn
        for reg in monitor.resources.values()
    }
    resources = []
    for args in seen:
        secrets: list[str] = []
        inputs = _normalise(copy.deepcopy(dict(args.inputs)), "", secrets)
        resources.append(
            RenderedResource(
                urn=urns.get((args.typ, args.name), ""),
                typ=args.typ,
                name=args.name,
                custom=bool(args.custom),
                inputs=inputs,
                secret_paths=tuple(secrets),
                provider=args.provider or "",
                parent_urn=monitor.parents.get((args.typ, args.name), ""),
                protect=(args.typ, args.name) in monitor.protected,
                dependencies=monitor.dependencies.get((args.typ, args.name), ()),
            )
        )
    return Rendered(resources, outputs, secret_outputs, error)


def render(
    config: Mapping[str, Any],
    *,
    stack: str = "test",
    secret_keys: tuple[str, ...] = ("openaiKey",),
    env: Mapping[str, str] | None = None,
    expect_error: bool = False,
    program: Callable[[], None] = _run_main,
) -> Rendered:
    """Run the program with `config` (keys without our namespace; objects as dicts).

    A failed run raises, unless `expect_error`: then the error and whatever was
    declared before it come back in the Rendered. `program` replaces __main__.py, to
    drive the components as a library.
    """
    # Keys with their own namespace ("kubernetes:context") are passed as they are.
    cli_config = {k if ":" in k else f"{NAMESPACE}:{k}": _cli_value(v) for k, v in config.items()}
    values = {
        "PULUMI_CONFIG": json.dumps(cli_config),
        # Like the CLI's language host: a Go nil slice, so JSON null when nothing is secret.
        "PULUMI_CONFIG_SECRET_KEYS": json.dumps([f"{NAMESPACE}:{k}" for k in secret_keys] or None),
        **(env or {}),
    }
    with _cli_env(values):
        rendered = contextvars.copy_context().run(_run_program, stack, program)
    if rendered.error is not None and not expect_error:
        raise rendered.error
    if rendered.error is None and expect_error:
        raise AssertionError("the program ran without error")
    return rendered


def stack_config(
    stack: str,
    *,
    key: str | None = None,
    overrides: Mapping[str, Any] | None = None,
    image: str | None = TEST_IMAGE,
) -> dict[str, Any]:
    """A stack file's config plus a fake secret key, the proxy image a user would set
    (None: leave it unset) and dotted-path overrides."""
    config = copy.deepcopy(stack_file_config(stack))
    config["openaiKey"] = key if key is not None else fake_key(stack)
    if image is not None:
        config.setdefault("proxy", {}).setdefault("image", image)
    for dotted, value in (overrides or {}).items():
        _set_path(config, dotted, value)
    return config


def render_stack(
    stack: str,
    *,
    key: str | None = None,
    overrides: Mapping[str, Any] | None = None,
    expect_error: bool = False,
    image: str | None = TEST_IMAGE,
) -> Rendered:
    """Render stacks/Pulumi.<stack>.yaml as `pulumi up` would see it (plus a proxy image)."""
    config = stack_config(stack, key=key, overrides=overrides, image=image)
    return render(config, stack=stack, expect_error=expect_error)


# Two renders compared resource by resource: what a `pulumi up` between them would change.


def by_identity(result: Rendered) -> dict[tuple[str, str], dict[str, Any]]:
    return {(r.typ, r.name): r.inputs for r in result.resources}


def changed_paths(before: Any, after: Any, path: str = "") -> list[str]:
    """Every leaf path whose value differs (added and removed keys included)."""
    if isinstance(before, dict) and isinstance(after, dict):
        paths = []
        for key in sorted(set(before) | set(after)):
            sub = f"{path}.{key}" if path else key
            paths += changed_paths(before.get(key), after.get(key), sub)
        return paths
    if isinstance(before, list) and isinstance(after, list) and len(before) == len(after):
        paths = []
        for i, (b, a) in enumerate(zip(before, after, strict=True)):
            paths += changed_paths(b, a, f"{path}[{i}]")
        return paths
    return [] if before == after else [path]


def diff(first: Rendered, second: Rendered) -> dict[tuple[str, str], list[str]]:
    a, b = by_identity(first), by_identity(second)
    result = {}
    for ident in sorted(set(a) | set(b)):
        if ident not in a:
            result[ident] = ["<added>"]
        elif ident not in b:
            result[ident] = ["<removed>"]
        elif paths := changed_paths(a[ident], b[ident]):
            result[ident] = paths
    return result
