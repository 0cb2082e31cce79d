"""What HTTP mode adds to a job: ``POST /predict`` latency minus the executor's own time.

Serves ``main.py`` with functions-framework (as ``python main.py --test`` does, emulators
behind), sends ``--jobs`` model-free 64x64 jobs one after another, and prints the median and p95
of (request latency - ``timings.execution_s``): parsing, the namespace claim, the attempt
record and release, the upload, ``result.json``, the event, and HTTP itself, all against the
local emulators. Compare with the job worker's per-job overhead (``bench/loop_overhead.py``),
which overlaps the same recording with the next job's execution; a request can't.

    COMFYUI_DIR=/path/to/ComfyUI VENV/bin/python -m bench.http_overhead --jobs 30
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from worker.local import emulators, stack
from worker.local.http_selftest import REPO, request, server_env, wait_for


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=30)
    args = parser.parse_args()
    comfyui = os.environ.get("COMFYUI_DIR")
    if not comfyui:
        print("set COMFYUI_DIR to a ComfyUI checkout", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        logs = Path(tmp)
        local = stack.start(logs)
        port = emulators.free_port()
        env = {**server_env(port, logs / "work", comfyui, local), "LOG_LEVEL": "WARNING"}
        server = subprocess.Popen(
            [sys.executable, "-m", "functions_framework", "--target=app", "--source=main.py",
             f"--port={port}", "--host=127.0.0.1"],
            cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            base = f"http://127.0.0.1:{port}"
            assert wait_for(f"{base}/ready", 300, server) is not None, "not ready"
            job = {"pipeline": "demo-invert", "params": {"width": 64, "height": 64}}
            request(f"{base}/predict", job)  # the first job loads ComfyUI's caches
            gaps, execs = [], []
            for _ in range(args.jobs):
                started = time.monotonic()
                status, doc, _ = request(f"{base}/predict", job)
                took = time.monotonic() - started
                assert status == 200, doc
                execution = float(doc["timings"]["execution_s"])
                gaps.append((took - execution) * 1000)
                execs.append(execution * 1000)
        finally:
            server.terminate()
            server.wait(10)
            local.stop()
    gaps.sort()
    p95 = gaps[int(0.95 * (len(gaps) - 1))]
    print(f"{args.jobs} requests: execution median {statistics.median(execs):.2f} ms; "
          f"overhead (latency - execution) median {statistics.median(gaps):.1f} ms, "
          f"p95 {p95:.1f} ms")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
