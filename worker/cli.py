"""Entry point: ``python -m worker <command>``.

Each command lives in ``worker.commands.<name>`` and exposes ``register(subparsers)``, which adds
its parser and sets ``handler`` to a function ``(args, settings) -> ExitCode``. This module reads
the environment once into ``Settings`` and turns configuration errors into exit code 78.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from worker.config import Settings
from worker.errors import ConfigError
from worker.exitcodes import ExitCode
from worker.obs import logs

COMMANDS = (
    "run",
    "serve",
    "submit",
    "pipelines",
    "dispatch",
    "status",
    "cancel",
    "check",
    "cost",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m worker",
        description="ComfyUI batch worker for Cloud Run Jobs (Pub/Sub in, GCS out).",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"worker.commands.{name}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = Settings.from_env(os.environ)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return ExitCode.CONFIG
    logs.setup(
        settings.log_level,
        static={
            "execution": settings.identity.execution,
            "task_index": settings.identity.task_index,
        },
    )
    try:
        return int(args.handler(args, settings))
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return ExitCode.CONFIG
