"""Running the worker in-process the way ``python -m worker run`` does."""

from __future__ import annotations

import argparse
import threading
from typing import Any

from tests.cloud import Cloud
from worker.commands import run as run_command
from worker.exitcodes import ExitCode


def run_worker(cloud: Cloud, **overrides: Any) -> ExitCode:
    """``python -m worker run`` in this process (the real wiring; scripted executor)."""
    return run_command.main(argparse.Namespace(manifest=None), cloud.settings(**overrides))


def run_worker_in_thread(
    cloud: Cloud, results: list[ExitCode], **overrides: Any
) -> threading.Thread:
    thread = threading.Thread(target=lambda: results.append(run_worker(cloud, **overrides)))
    thread.start()
    return thread
