"""Command line: `python -m proxy [serve] [flags]` and `python -m proxy smoke --url URL`.

Serve flags override the matching LLM_PROXY_* env vars; unset flags leave the
env var (or the default) in charge.
"""

import argparse
import sys
from collections.abc import Sequence

from pydantic import ValidationError

from proxy.settings import Settings

# flag -> Settings field; each also reads LLM_PROXY_<FIELD> from the environment.
_SERVE_FLAGS: dict[str, tuple[str, type, str]] = {
    "--host": ("host", str, "listen address (LLM_PROXY_HOST, default 127.0.0.1)"),
    "--port": ("port", int, "listen port (LLM_PROXY_PORT, default 8080)"),
    "--upstream": ("upstream", str, "OpenAI base URL (LLM_PROXY_UPSTREAM)"),
    "--key-file": ("key_file", str, "key file path (LLM_PROXY_KEY_FILE)"),
    "--allowed-models": ("allowed_models", str, "comma-separated (LLM_PROXY_ALLOWED_MODELS)"),
    "--max-in-flight": ("max_in_flight", int, "503 beyond this (LLM_PROXY_MAX_IN_FLIGHT)"),
    "--max-body-bytes": ("max_body_bytes", int, "413 beyond this (LLM_PROXY_MAX_BODY_BYTES)"),
    "--connect-timeout": ("connect_timeout", float, "seconds (LLM_PROXY_CONNECT_TIMEOUT)"),
    "--read-timeout": ("read_timeout", float, "seconds (LLM_PROXY_READ_TIMEOUT)"),
    "--drain-timeout": ("drain_timeout", float, "seconds (LLM_PROXY_DRAIN_TIMEOUT)"),
    "--key-poll-interval": ("key_poll_interval", float, "s (LLM_PROXY_KEY_POLL_INTERVAL)"),
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m proxy", description=__doc__)
    commands = parser.add_subparsers(dest="command")
    serve = commands.add_parser("serve", help="run the proxy (the default command)")
    for flag, (field, kind, text) in _SERVE_FLAGS.items():
        serve.add_argument(flag, dest=field, type=kind, default=None, help=text)
    serve.add_argument(
        "--disabled", action="store_true", default=None, help="kill switch (LLM_PROXY_DISABLED)"
    )
    smoke = commands.add_parser("smoke", help="one keyless chat completion through a gateway")
    smoke.add_argument("--url", required=True, help="OpenAI base URL, e.g. http://host/v1")
    smoke.add_argument("--model", default="gpt-4o-mini")
    smoke.add_argument("--timeout", type=float, default=60.0, help="seconds")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if not args_list or (args_list[0].startswith("-") and args_list[0] not in ("-h", "--help")):
        args_list.insert(0, "serve")
    args = _parser().parse_args(args_list)
    if args.command == "smoke":
        from proxy.smoke import run_smoke  # only smoke needs httpx

        ok, line = run_smoke(args.url, args.model, args.timeout)
        print(line)
        return 0 if ok else 1
    overrides = {
        field: value
        for field in [*(f for f, _, _ in _SERVE_FLAGS.values()), "disabled"]
        if (value := getattr(args, field, None)) is not None
    }
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        for problem in exc.errors():
            name = "LLM_PROXY_" + "_".join(str(p) for p in problem["loc"]).upper()
            print(f"invalid setting {name}: {problem['msg']}", file=sys.stderr)
        return 2
    from proxy.server import run  # aiohttp only when serving

    run(settings)
    return 0
