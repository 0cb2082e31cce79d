"""Run ``python -m worker ...`` as a child process with a test's cloud slice as environment."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.cloud import REPO, Cloud


def worker_cli(
    cloud: Cloud | None, *args: str | Path | int, timeout_s: float = 60, **env: Any
) -> subprocess.CompletedProcess[str]:
    base = cloud.env(JOBS_TOPIC=cloud.jobs_topic) if cloud is not None else {}
    full = {**os.environ, **base, **{k: str(v) for k, v in env.items()}, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "worker", *map(str, args)],
        check=False,  # the exit code is what tests look at
        cwd=REPO,
        env=full,
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )
