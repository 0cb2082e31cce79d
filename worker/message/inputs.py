"""Stage a job's input files into its own directory (``gs://`` downloads and base64 data)."""

from __future__ import annotations

import base64
import binascii
import functools
import re
import shutil
import subprocess
from pathlib import Path

from worker.adapters.storage.base import AccessDenied, ObjectNotFound, ObjectStore, ObjectTooLarge
from worker.config import Limits
from worker.errors import ErrorType, JobFailed
from worker.message.bounded import echo, safe_str
from worker.message.job import InputFile

_DATA_URL = re.compile(r"data:[\w/+.-]*(;[\w=.-]+)*;base64,", re.ASCII)
_WHITESPACE = b" \t\n\r\x0b\x0c"  # what ``\s`` matches in a bytes pattern
# Base64 text from this size on is decoded by a ``base64 -d`` child process (docs/performance.md).
EXTERNAL_MIN_BYTES = 1 << 20


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
    payload = _payload(text)
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
        raise _input_error(
            name, f"data is not valid base64 ({safe_str(exc, 200)}){_hint(payload)}"
        ) from exc


_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/="


def _hint(payload: bytes) -> str:
    """What to fix in base64 text the decoder refused (``payload`` without whitespace)."""
    other = payload.translate(None, _ALPHABET)  # one C pass: what is not standard base64
    if other and not other.translate(None, b"-_"):
        return (
            ": it is URL-safe base64 ('-' and '_'); send standard base64 (RFC 4648 section 4: "
            "'+' and '/', padded with '=')"
        )
    if other:
        return (
            f": byte {other[0]:#04x} at {payload.find(other[:1])} is not in the base64 alphabet "
            "(A-Z a-z 0-9 + / and '=' padding; a data URL is data:<type>;base64,<data>)"
        )
    if len(payload) % 4:
        return (
            f": it is {len(payload)} characters without whitespace, not a multiple of 4; "
            "pad it with '=' to a multiple of 4"
        )
    return ""


def _payload(text: str) -> bytes:
    match = _DATA_URL.match(text)
    return (text[match.end() :] if match else text).encode("utf-8", "surrogatepass")


@functools.cache
def _base64_tool() -> str | None:
    return shutil.which("base64")


def decode_base64_to(name: str, text: str, dest: Path, budget: int, limits: Limits) -> int:
    """Decode base64 ``text`` into the file ``dest``; return its size, or raise as
    ``decode_base64`` does (and ``_too_large`` past ``budget`` bytes).

    ``binascii`` holds the GIL for the whole pass (6-9 ms for 2.8 MB here, several times that on
    a busy host), and every millisecond of it is taken from the job ComfyUI is running. From
    ``EXTERNAL_MIN_BYTES`` on, coreutils' ``base64 -d`` decodes into the file instead: this
    thread only writes the text to a pipe and waits, both without the GIL. It is used only for
    text that strict decoding would read the same way (no ``=`` before the last two characters:
    the tool would accept padding in the middle); anything it refuses, or a host without it,
    goes through ``decode_base64``, whose messages say what is wrong.
    """
    payload = _payload(text)
    tool = _base64_tool()
    if (
        len(payload) >= EXTERNAL_MIN_BYTES
        and tool is not None
        and payload.find(b"=", 0, len(payload) - 2) == -1
        and _decode_external(tool, payload, dest)
    ):
        size = dest.stat().st_size
        if size > budget:
            dest.unlink()
            raise _too_large(name, size, limits)
        return size
    data = decode_base64(name, text)
    if len(data) > budget:
        raise _too_large(name, len(data), limits)
    dest.write_bytes(data)
    return len(data)


def _decode_external(tool: str, payload: bytes, dest: Path) -> bool:
    """``base64 -d`` from a pipe into ``dest``. The text goes in one blocking write, not in
    ``communicate``'s 4 KiB slices: each slice would take the GIL back from the executor's
    thread, and wait for it up to a switch interval (5 ms) while ComfyUI runs Python."""
    try:
        with dest.open("wb") as out:
            child = subprocess.Popen(
                [tool, "-d"], stdin=subprocess.PIPE, stdout=out, stderr=subprocess.DEVNULL
            )
    except OSError:
        return False
    assert child.stdin is not None
    try:
        with child.stdin:
            child.stdin.write(payload)  # its output goes to a file: it never blocks
    except BrokenPipeError:  # it stopped reading: invalid input
        pass
    try:
        return child.wait(timeout=120) == 0
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()
        return False


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
        return decode_base64_to(item.name, item.data, dest, budget, limits)
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
