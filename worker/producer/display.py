"""What ``submit --wait`` shows: a progress bar on stderr, one line per finished job on stdout.

On a terminal the bar redraws in place; otherwise (CI, a log file) a plain line is written every
``PLAIN_EVERY_S`` seconds, so logs stay readable. Either way the final line is written once, by
``done()``.
"""

from __future__ import annotations

import json
import time
from typing import Any, TextIO

from worker.producer.wait import Tracker

WIDTH = 30
PLAIN_EVERY_S = 10.0


class ProgressBar:
    def __init__(self, stream: TextIO, started: float | None = None) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self.started = started or time.monotonic()
        self._last = 0.0

    def line(self, tracker: Tracker) -> str:
        total = len(tracker.wanted)
        done = len(tracker.results) + sum(tracker.running.values())
        filled = int(WIDTH * done / total) if total else WIDTH
        bar = "#" * filled + "." * (WIDTH - filled)
        parts = [f"[{bar}] {len(tracker.results)}/{total} finished"]
        if tracker.failed:
            parts.append(f"{tracker.failed} failed")
        if tracker.cancelled:
            parts.append(f"{tracker.cancelled} cancelled")
        if tracker.running:
            parts.append(f"{len(tracker.running)} running")
        parts.append(f"{time.monotonic() - self.started:.0f} s")
        return ", ".join(parts)

    def update(self, tracker: Tracker, force: bool = False) -> None:
        if tracker.finished:  # ``done()`` writes the final line, once
            return
        now = time.monotonic()
        if not force and now - self._last < (0.2 if self.tty else PLAIN_EVERY_S):
            return
        self._last = now
        if self.tty:
            self.stream.write("\r\033[K" + self.line(tracker))
        else:
            self.stream.write(self.line(tracker) + "\n")
        self.stream.flush()

    def clear(self) -> None:
        """Erase the bar before something else is printed on the terminal."""
        if self.tty:
            self.stream.write("\r\033[K")
            self.stream.flush()

    def done(self, tracker: Tracker) -> None:
        self.clear()
        self.stream.write(self.line(tracker) + "\n")
        self.stream.flush()


def describe(result: dict[str, Any]) -> str:
    """``JOB succeeded gs://...``, ``JOB failed invalid_job: message (node 3)`` or
    ``JOB cancelled: message``."""
    job_id = result.get("job_id")
    if result.get("status") == "succeeded":
        uris = " ".join(str(o.get("uri")) for o in result.get("outputs") or [])
        return f"{job_id} succeeded {uris}".rstrip()
    error = result.get("error") or {}
    if result.get("status") == "cancelled":
        return f"{job_id} cancelled: {error.get('message', '')}".rstrip(": ")
    where = f" (node {error['node_id']})" if error.get("node_id") else ""
    return f"{job_id} failed {error.get('type', 'unknown')}: {error.get('message', '')}{where}"


def as_json(result: dict[str, Any]) -> str:
    return json.dumps(result, separators=(",", ":"))
