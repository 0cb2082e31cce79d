import os
import sys

from worker.exitcodes import ExitCode

# Top-level packages of the worker's own requirements (requirements.txt). One of them missing
# means this is not the project's Python (a bare `python3`), not a bug: say which one to use.
WORKER_PACKAGES = {"google", "grpc", "tenacity"}


def wrong_python(exc: ModuleNotFoundError) -> bool:
    return (exc.name or "").partition(".")[0] in WORKER_PACKAGES


def run() -> int:
    try:
        from worker.cli import main

        return main()
    except ModuleNotFoundError as exc:
        if not wrong_python(exc):
            raise
        print(
            f"error: {sys.executable} lacks the worker's packages (no module named "
            f"{exc.name!r}). Use the project's environment: `source .venv/bin/activate` "
            "(scripts/setup makes .venv), then `python -m worker ...`; or run "
            "`.venv/bin/python -m worker ...`",
            file=sys.stderr,
        )
        return ExitCode.CONFIG


code = run()
sys.stdout.flush()
sys.stderr.flush()
# os._exit, not sys.exit: a daemon thread stuck in native code (an executor that ignored its
# interrupt) or a client library's non-daemon thread must not hold the process past Cloud Run's
# 10 s SIGTERM grace. Everything that matters was flushed, acked or nacked before main returned.
os._exit(code)
