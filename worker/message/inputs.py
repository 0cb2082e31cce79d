"""Stage a job's input files into its own directory (``gs://`` downloads and base64 data)."""

from __future__ import annotations

import base64
import binascii
import re
from pathlib import Path

from worker.adapters.storage.base import AccessDenied, ObjectNotFound, ObjectStore, ObjectTooLarge
from worker.config import Limits
from worker.errors import ErrorType, JobFailed
from worker.message.bounded import echo, safe_str
from worker.message.job import InputFile

_DATA_URL = re.compile(r"data:[\w/+.-]*(;[\w=.-]+)*;base64,", re.ASCII)
_WHITESPACE = b" \t\n\r\x0b\x0c"  # what ``\s`` matches in a bytes pattern


def _input_error(name: str, message: str) -> JobFailed:
    return JobFailed(ErrorType.INPUT_ERROR, f"input {echo(name)}: {message}")


def decode_base64(name: str, text: str) -> bytes:
    """Decode base64 text, with or without a ``data:...;base64,`` prefix and line breaks.

    This runs on the prefetch thread while a job executes, and holds the GIL throughout (no
    base64 decoder releases it): each pass over a few MB is milliseconds taken from ComfyUI's
    Python. So one C pass in the usual case (``strict_mode``: the alphabet and the padding
    checked while decoding), instead of a regex to strip whitespace, a regex to validate and a
    decode (about 4x the time). Whitespace (MIME line breaks) costs one ``translate`` more; the
    error message of invalid data comes from the original strict ``b64decode``.
    """
    match = _DATA_URL.match(text)
    payload = (text[match.end() :] if match else text).encode("utf-8", "surrogatepass")
    try:
        return binascii.a2b_base64(payload, strict_mode=True)
    except binascii.Error:
        pass
    payload = payload.translate(None, _WHITESPACE)
    try:
        return binascii.a2b_base64(payload, strict_mode=True)
    except binascii.Error:
        pass
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise _input_error(name, f"data is not valid base64 ({safe_str(exc, 200)})") from exc


def stage(
    inputs: tuple[InputFile, ...], directory: Path, store: ObjectStore, limits: Limits
) -> int:
    """Write every input under ``directory``; return the total bytes staged.

    Raises ``JobFailed(input_error)`` for inputs that are missing, too large, unreadable or
    undecodable; ``Transient`` from the store passes through (the job is retried).
    """
    total = 0
    for item in inputs:
        try:
            total += _stage_one(item, directory, store, limits, total)
        except OSError as exc:  # the name passed validation; the file system still said no
            raise _input_error(
                item.name, f"could not be written ({exc.strerror or type(exc).__name__})"
            ) from exc
    return total


def _stage_one(
    item: InputFile, directory: Path, store: ObjectStore, limits: Limits, total: int
) -> int:
    dest = directory / item.name
    dest.parent.mkdir(parents=True, exist_ok=True)
    budget = min(limits.max_input_bytes, limits.max_total_input_bytes - total)
    if item.data is not None:
        data = decode_base64(item.name, item.data)
        if len(data) > budget:
            raise _too_large(item.name, len(data), limits)
        dest.write_bytes(data)
        return len(data)
    assert item.uri is not None
    try:
        return store.download(item.uri, dest, budget)
    except ObjectNotFound as exc:
        raise _input_error(item.name, f"{item.uri} does not exist") from exc
    except ObjectTooLarge as exc:
        raise _input_error(
            item.name,
            f"{exc} (MAX_INPUT_BYTES={limits.max_input_bytes}, "
            f"MAX_TOTAL_INPUT_BYTES={limits.max_total_input_bytes})",
        ) from exc
    except AccessDenied as exc:
        raise _input_error(
            item.name,
            f"{exc}: grant the worker's service account roles/storage.objectViewer on the bucket",
        ) from exc


def _too_large(name: str, size: int, limits: Limits) -> JobFailed:
    return _input_error(
        name,
        f"is {size} bytes, over the limit (MAX_INPUT_BYTES="
        f"{limits.max_input_bytes}, MAX_TOTAL_INPUT_BYTES="
        f"{limits.max_total_input_bytes})",
    )
