"""Structured JSON logs in Cloud Logging's shape.

Each record is one JSON line on stderr with ``severity``, ``message``, ``time`` and the fields
passed in ``extra={"fields": {...}}`` (job id, delivery attempt, durations, ...). The worker's
identity (execution, task index) is added to every line. Cloud Logging turns the line into a
``jsonPayload`` and reads ``severity`` from it.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, TextIO

from worker.message.bounded import bound, clip

# Cloud Logging drops entries over 256 KB; every line stays under 64 KB whatever it quotes.
MAX_LINE_BYTES = 60_000
FIELD_CHARS = 8_000  # one string field (a message, an error)
EXCEPTION_CHARS = 16_000  # a traceback keeps its last frames, where the error is

_SEVERITY = {
    logging.DEBUG: "DEBUG",
    logging.INFO: "INFO",
    logging.WARNING: "WARNING",
    logging.ERROR: "ERROR",
    logging.CRITICAL: "CRITICAL",
}


class JsonFormatter(logging.Formatter):
    def __init__(self, static: Mapping[str, Any] | None = None) -> None:
        super().__init__()
        self.static = dict(static or {})

    def format(self, record: logging.LogRecord) -> str:
        head: dict[str, Any] = {
            "severity": _SEVERITY.get(record.levelno, record.levelname),
            "message": clip(record.getMessage(), FIELD_CHARS),
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "logger": record.name,
        }
        doc = {**head, **self.static}
        fields = getattr(record, "fields", None)
        if isinstance(fields, Mapping):
            doc.update({str(k): _field(v) for k, v in fields.items()})
        if record.exc_info:
            text = self.formatException(record.exc_info)
            if len(text) > EXCEPTION_CHARS:
                text = f"... ({len(text)} characters)\n{text[-EXCEPTION_CHARS:]}"
            doc["exception"] = text
        line = _dumps(doc)
        if len(line) * 4 > MAX_LINE_BYTES and len(line.encode()) > MAX_LINE_BYTES:
            head["message"] = clip(str(head["message"]), 2_000)
            line = _dumps({**head, **self.static, "truncated_bytes": len(line.encode())})
        return line


def _field(value: Any) -> Any:
    if isinstance(value, str):
        return clip(value, FIELD_CHARS)
    if isinstance(value, bool | int | float) or value is None:
        return value
    return bound(value)


def _dumps(doc: Mapping[str, Any]) -> str:
    """One JSON line, never with a lone surrogate (they are not UTF-8)."""
    line = json.dumps(doc, default=str, ensure_ascii=False)
    try:
        line.encode()
    except UnicodeEncodeError:
        line = line.encode("utf-8", "replace").decode("utf-8")
    return line


def setup(
    level: str = "INFO", static: Mapping[str, Any] | None = None, stream: TextIO | None = None
) -> None:
    """Route the root logger (and therefore ComfyUI's and google's) to JSON on ``stream``.

    Logs go to stderr so that stdout carries only what a command prints for the user (job ids,
    JSON results); Cloud Logging parses JSON lines from both streams.
    """
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter({k: v for k, v in (static or {}).items() if v is not None}))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # The google client libraries log retries at INFO/DEBUG on loggers that don't propagate;
    # our own retry wrappers log what matters at WARNING.
    for noisy in ("google", "urllib3", "grpc"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))


def static() -> dict[str, Any]:
    """The fields ``setup`` adds to every line (none before it ran): the executor process's
    lines carry the same ones as the process that started it."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler.formatter, JsonFormatter):
            return dict(handler.formatter.static)
    return {}


def event(
    logger: logging.Logger,
    message: str,
    level: int = logging.INFO,
    *,
    exc_info: bool = False,
    **fields: Any,
) -> None:
    """Log one structured line: ``event(log, "job.succeeded", job_id=..., total_s=1.2)``."""
    logger.log(level, message, exc_info=exc_info, extra={"fields": fields})
