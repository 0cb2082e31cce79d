"""The model-prefetch benchmark (bench/model_prefetch.py) runs end to end at tiny sizes: both
loops finish every job, and only the worker's fetches overlap an execution."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_the_benchmark_runs_both_loops_at_tiny_sizes() -> None:
    argv = ["--jobs", "3", "--model-mb", "1", "3", "--exec-s", "0.3"]
    done = subprocess.run(
        [sys.executable, "-m", "bench.model_prefetch", *argv],
        check=False,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    rows = {
        row["loop"]: row
        for row in (json.loads(line) for line in done.stdout.splitlines() if line[:1] == "{")
    }
    assert set(rows) == {"baseline", "worker"}
    assert all(r["jobs"] == 3 and len(r["models_s_each"]) == 3 for r in rows.values())
    assert rows["baseline"]["models_overlap_s_sum"] == 0
    assert rows["worker"]["models_overlap_s_sum"] > 0, "the next job's model came during a run"
    assert "| worker |" in done.stdout
