"""``scripts/local-run --keep``: the local stack and a worker, kept up until Ctrl-C.

It prints (and writes to ``<state>/playground.env``) the ``export`` lines a second shell needs to
send its own jobs with ``python -m worker submit``. Ctrl-C (or SIGTERM) stops the worker the way
Cloud Run does (SIGTERM: in-flight work goes back to the queue), then the emulators.
"""

from __future__ import annotations

import signal
import subprocess
import threading
from pathlib import Path
from types import FrameType

from worker.local import emulators
from worker.local.stack import Stack

POLL_S = 0.5
WORKER_STOP_S = 20.0  # SHUTDOWN_GRACE_S (8 s) and then some


def keep(stack: Stack, worker_argv: list[str], worker_env: dict[str, str], state: Path) -> int:
    """Run the worker until a signal; 0 when stopped that way and the worker exited cleanly."""
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, on_signal)
    worker, log_path = emulators.spawn("worker", worker_argv, state / "logs", worker_env)
    env_file = state / "playground.env"
    env_file.write_text("\n".join(stack.export_lines()) + "\n")
    try:
        _banner(stack, env_file, f"pid {worker.pid}, log: {log_path}")
        ready = False
        while not stop.wait(POLL_S):
            if worker.poll() is not None:
                print(f"\nthe worker exited with {worker.returncode}; see {log_path}", flush=True)
                break
            if not ready and "worker.ready" in log_path.read_text(errors="replace"):
                ready = True
                print("worker ready: submit jobs from the second shell", flush=True)
        code = _stop(worker)
    finally:
        env_file.unlink(missing_ok=True)
    print(f"worker stopped (exit {code}); stopping the emulators", flush=True)
    return 0 if stop.is_set() and code == 0 else 1


def _stop(worker: subprocess.Popen[bytes]) -> int:
    if worker.poll() is None:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(WORKER_STOP_S)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
    return worker.returncode


def _banner(stack: Stack, env_file: Path, worker: str) -> None:
    lines = [
        f"Playground up: Pub/Sub emulator on {stack.pubsub.host}, fake-gcs-server on "
        f"{stack.gcs.host}, a worker starting ({worker}).",
        "",
        "In a second shell, from this folder:",
        "",
        "  source .venv/bin/activate",
        f"  source {env_file}    # or paste these:",
        *(f"  {line}" for line in stack.export_lines()),
        "",
        "  python -m worker submit --pipeline demo-invert -p width=320 --wait"
        " --download .local/outputs",
        "",
        f"Outputs land in {stack.output_uri}/<job_id>/ (--download copies them). "
        "Ctrl-C here stops the worker and the emulators.",
    ]
    print("\n".join(lines), flush=True)
