"""``python -m worker cancel JOB_ID``: write the job's cancel marker (``worker.record.cancel``).

A job not started yet never runs and ends ``cancelled``; a running one is interrupted within
``CANCEL_CHECK_S``; a finished one is not changed. Exit 0 when the marker was written (or was
there already), 1 when the job had finished, 2 for an id that names no job's folder.
"""

from __future__ import annotations

import argparse
import getpass
import socket
import sys
from typing import Any

from worker.commands.status import add_job_arguments, folder_of
from worker.config import Settings
from worker.exitcodes import ExitCode
from worker.message.jobref import BadReference, ref_of_folder
from worker.record import cancel


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "cancel",
        help="cancel a job: it never runs, or is interrupted within seconds",
        description="Write the cancel marker <OUTPUT_URI>/[prefix/]<JOB_ID>/.cancel. A job not "
        "started yet never runs; a running one is interrupted within CANCEL_CHECK_S; either ends "
        "with a 'cancelled' result and event. A finished job is not changed (exit 1).",
    )
    add_job_arguments(parser)
    parser.set_defaults(handler=main)


def main(args: argparse.Namespace, settings: Settings) -> int:
    from worker.adapters.storage.gcs import GcsStore

    settings.require("OUTPUT_URI")
    assert settings.output_uri is not None
    try:
        folder = folder_of(settings, args.job_id, args.prefix)
        ref = ref_of_folder(settings.output_uri, folder)
    except BadReference as exc:
        print(f"error: {args.job_id!r}: {exc}", file=sys.stderr)
        return ExitCode.USAGE
    store = GcsStore(settings.project, settings.timeouts.service_retry_s)
    try:
        outcome = cancel.request(store, settings.output_uri, ref, by=_who())
    except cancel.CancelRefused as exc:
        print(f"error: {exc}", file=sys.stderr)
        return ExitCode.USAGE
    state = outcome.state
    if state.result is not None:
        print(f"{args.job_id} had finished ({state.state}): not changed")
        return ExitCode.JOBS_FAILED
    print(f"{args.job_id} cancelled ({'marker written' if outcome.written else 'already'})")
    return ExitCode.OK


def _who() -> str:
    try:
        return f"cli {getpass.getuser()}@{socket.gethostname()}"
    except Exception:  # no user name in this environment (a container's uid)
        return f"cli @{socket.gethostname()}"
