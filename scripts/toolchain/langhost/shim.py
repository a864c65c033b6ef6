"""Runs a Pulumi Python program for the e2e language host (the role of upstream's exec shim)."""

import argparse
import asyncio
import logging
import os
import runpy
import sys
import traceback

import pulumi
import pulumi.runtime

BAIL = 32  # the error was already reported to the engine

ap = argparse.ArgumentParser()
for flag in (
    "monitor",
    "engine",
    "project",
    "stack",
    "organization",
    "root",
    "pwd",
    "dry-run",
    "parallel",
):
    ap.add_argument("--" + flag, default="")
ap.add_argument("program")
ap.add_argument("args", nargs="*")
a = ap.parse_args()

pulumi.runtime.set_all_config(
    pulumi.runtime.get_config_env(), pulumi.runtime.get_config_secret_keys_env()
)
pulumi.runtime.configure(
    pulumi.runtime.Settings(
        project=a.project,
        stack=a.stack,
        monitor=a.monitor,
        engine=a.engine,
        parallel=int(a.parallel or 0),
        dry_run=a.dry_run == "true",
        organization=a.organization or None,
        root_directory=a.root or None,
    )
)
sys.argv = [a.program, *a.args]
if a.pwd:
    os.chdir(a.pwd)
logging.getLogger("asyncio").setLevel(logging.CRITICAL)


def run_program() -> None:
    """Run the program as `python PROGRAM` would (a directory runs its __main__.py)."""
    runpy.run_path(a.program, run_name="__main__")


loop = asyncio.new_event_loop()
asyncio.set_event_loop(loop)
code = 0
try:
    loop.run_until_complete(pulumi.runtime.run_in_stack(run_program))
except pulumi.RunError as e:
    pulumi.log.error(str(e))
    code = BAIL
except Exception:
    pulumi.log.error("Program failed with an unhandled exception:\n" + traceback.format_exc())
    code = BAIL
finally:
    loop.close()
    sys.stdout.flush()
    sys.stderr.flush()
sys.exit(code)
