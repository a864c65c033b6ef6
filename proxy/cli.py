"""Command line: `python -m proxy [serve] [flags]` and `python -m proxy smoke --url URL`.

Serve flags override the matching LLM_PROXY_* env vars; unset flags leave the
env var (or the default) in charge.
"""

import argparse
import sys
from collections.abc import Sequence

from pydantic import ValidationError

from proxy import contract
from proxy.settings import Settings


def _flag_help(field: str) -> str:
    _, spec, default = contract.specs()[field]
    shown = ",".join(map(str, default)) if isinstance(default, tuple) else default
    return f"{spec.doc} [env {contract.env_name(field)}, default {shown!s}]".replace("%", "%%")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m proxy", description=__doc__)
    commands = parser.add_subparsers(dest="command")
    serve = commands.add_parser("serve", help="run the proxy (the default command)")
    # Every Settings field is a `serve` flag: --key-file <-> key_file <-> LLM_PROXY_KEY_FILE.
    for field, info in Settings.model_fields.items():
        flag = contract.flag_name(field)
        if info.annotation is bool:
            serve.add_argument(flag, action="store_true", default=None, help=_flag_help(field))
            continue
        # Numbers are checked by argparse; the rest (paths, model lists) by Settings.
        kind = int if info.annotation is int else float if info.annotation is float else str
        serve.add_argument(flag, dest=field, type=kind, default=None, help=_flag_help(field))
    smoke = commands.add_parser("smoke", help="one keyless chat completion through a gateway")
    smoke.add_argument("--url", required=True, help="OpenAI base URL, e.g. http://host/v1")
    smoke.add_argument("--model", default="gpt-4o-mini")
    smoke.add_argument("--timeout", type=float, default=60.0, help="seconds")
    smoke.add_argument(
        "--expect-key",
        metavar="FINGERPRINT",
        help="bundled proxy only: first wait until the answering proxy serves this key",
    )
    smoke.add_argument(
        "--key-wait", type=float, default=180.0, help="seconds to wait for --expect-key"
    )
    smoke.add_argument(
        "--token-file",
        help="send this projected ServiceAccount token as the API key (identity on)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if not args_list or (args_list[0].startswith("-") and args_list[0] not in ("-h", "--help")):
        args_list.insert(0, "serve")
    args = _parser().parse_args(args_list)
    if args.command == "smoke":
        from proxy.smoke_client import run_smoke  # only smoke needs httpx

        ok, line = run_smoke(
            args.url,
            args.model,
            args.timeout,
            expect_key=args.expect_key,
            key_wait=args.key_wait,
            token_file=args.token_file,
        )
        print(line)
        return 0 if ok else 1
    overrides = {
        field: value
        for field in Settings.model_fields
        if (value := getattr(args, field, None)) is not None
    }
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        for problem in exc.errors():
            name = contract.env_name("_".join(str(p) for p in problem["loc"]))
            if not problem["loc"]:  # a rule across settings: its message names them
                name = "(LLM_PROXY_*)"
            message = problem["msg"].removeprefix("Value error, ")
            print(f"invalid setting {name}: {message}", file=sys.stderr)
        return 2
    from proxy.server import run  # aiohttp only when serving

    return run(settings)
