"""``python -m worker`` run by a Python that lacks the worker's packages says which one to use."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.cloud import REPO
from worker.exitcodes import ExitCode


def test_a_bare_python_is_told_to_use_the_project_venv() -> None:
    # -S: no site-packages, as a system python3 without google-cloud-*; the stdlib is all it has.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run(
        [sys.executable, "-S", "-m", "worker", "pipelines"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == ExitCode.CONFIG, done.stderr
    assert "Traceback" not in done.stderr
    assert "lacks the worker's packages (no module named 'google" in done.stderr
    assert "source .venv/bin/activate" in done.stderr
    assert ".venv/bin/python -m worker" in done.stderr
