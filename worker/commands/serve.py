"""``python -m worker serve``: HTTP mode, the image's default command (the Cloud Run service).

Runs ``functions-framework --target=app --source=<main.py>`` in this process (gunicorn, one
worker process with threads; ``PORT`` is read by functions-framework itself, 8080 by default).
The job worker's own runner executes ``/predict`` and ``runsync`` jobs (``worker.http``); the
jobs keep ``args: [run]``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from worker.config import Settings

MAIN = Path(__file__).resolve().parents[2] / "main.py"


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "serve",
        help="serve HTTP mode (main.py) with functions-framework: the Cloud Run service",
        description="functions-framework --target=app --source=main.py: /healthz, /ready, "
        "POST /predict and the Runpod-compatible API under /v2/{endpoint}/ (docs/http.md). "
        "The port is PORT (8080).",
    )
    parser.set_defaults(handler=main)


def main(args: argparse.Namespace, settings: Settings) -> int:
    from functions_framework._cli import _cli

    sys.argv = ["functions-framework", "--target=app", f"--source={MAIN}"]
    _cli.main(standalone_mode=False)  # returns when gunicorn's arbiter stops (SIGTERM)
    return 0
