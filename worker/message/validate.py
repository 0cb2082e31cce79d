"""Field checks for job messages. Each raises ``JobFailed(invalid_job)`` saying what to fix."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from worker.adapters.storage import uri as gsuri
from worker.config import Limits
from worker.errors import ErrorType, JobFailed
from worker.message import jsonsafe
from worker.message.bounded import echo
from worker.message.job import InputFile

_PREFIX_SEGMENT = re.compile(r"[A-Za-z0-9._=-]{1,128}")
_NAME_SEGMENT = re.compile(r"[^/\\\x00-\x1f\x7f]{1,128}")
MAX_NAME_CHARS = 255
MAX_NAME_DEPTH = 8
MAX_SEGMENT_BYTES = 255  # a file name's limit on Linux (NAME_MAX), in UTF-8 bytes
MAX_OBJECT_NAME_BYTES = 1024  # GCS's limit on an object name


def _invalid(message: str) -> JobFailed:
    return JobFailed(ErrorType.INVALID_JOB, message)


def check_prefix(prefix: Any, max_chars: int) -> str:
    """A relative path of safe segments; never absolute, never ``..``: it stays under OUTPUT_URI."""
    if not isinstance(prefix, str):
        raise _invalid('"output.prefix" must be a string such as "campaign-7/batch-2"')
    if prefix == "":
        return ""
    problem = None
    if len(prefix) > max_chars:
        problem = f"is longer than {max_chars} characters"
    elif prefix.startswith("/") or prefix.startswith("gs://"):
        problem = "is absolute; give a path relative to the output location"
    elif prefix.startswith("_"):
        problem = (
            "starts with '_', which is reserved for the worker's own folders (_inputs, "
            "_dispatch): start it with a letter or digit"
        )
    else:
        for segment in prefix.rstrip("/").split("/"):
            if segment in (".", ".."):
                problem = f"contains {segment!r}; outputs can't leave the output location"
                break
            if segment.startswith("."):
                problem = (
                    f"has the segment {echo(segment)}: a segment never starts with '.', which "
                    "names the worker's markers (.namespace, .cancel)"
                )
                break
            if not _PREFIX_SEGMENT.fullmatch(segment):
                problem = (
                    f"has the segment {echo(segment)}: use 1-128 characters from "
                    "A-Z a-z 0-9 . _ = - per segment, separated by /"
                )
                break
    if problem:
        raise _invalid(f'"output.prefix" {echo(prefix)} {problem}')
    return prefix.rstrip("/")


def check_name(name: Any, where: str) -> str:
    """An input file name: a relative path inside the job's input directory."""
    if not isinstance(name, str) or not name:
        raise _invalid(f'{where}.name must be a non-empty string such as "photo.png"')
    segments = name.split("/")
    bad = (
        len(name) > MAX_NAME_CHARS
        or len(segments) > MAX_NAME_DEPTH
        or name.startswith("/")
        or any(s in (".", "..") or not _NAME_SEGMENT.fullmatch(s) for s in segments)
        or any(len(s.encode("utf-8", "surrogatepass")) > MAX_SEGMENT_BYTES for s in segments)
    )
    if bad:
        raise _invalid(
            f"{where}.name {echo(name)} is not a safe relative file name: no leading /, no . or "
            f".. segments, no backslashes or control characters, at most {MAX_NAME_DEPTH} levels "
            f"and {MAX_NAME_CHARS} characters, each level at most {MAX_SEGMENT_BYTES} bytes "
            "in UTF-8"
        )
    return name


def check_inputs(raw: Any, limits: Limits, output_bucket: str) -> tuple[InputFile, ...]:
    if not isinstance(raw, list):
        raise _invalid('"inputs" must be a list of {"name", "uri"} or {"name", "data"}')
    if len(raw) > limits.max_inputs:
        raise _invalid(f"{len(raw)} inputs; the limit is {limits.max_inputs} (MAX_INPUTS)")
    files: list[InputFile] = []
    seen: set[str] = set()
    for i, item in enumerate(raw):
        where = f"inputs[{i}]"
        if not isinstance(item, dict) or set(item) not in ({"name", "uri"}, {"name", "data"}):
            raise _invalid(
                f'{where} must be {{"name": ..., "uri": "gs://..."}} or '
                '{"name": ..., "data": <base64>}'
            )
        name = check_name(item["name"], where)
        if name in seen:
            raise _invalid(f"{where}.name {echo(name)} appears twice")
        seen.add(name)
        if "uri" in item:
            files.append(InputFile(name, uri=_check_uri(item["uri"], where, limits, output_bucket)))
        elif isinstance(item["data"], str):
            files.append(InputFile(name, data=item["data"]))
        else:
            raise _invalid(f"{where}.data must be base64 text")
    _check_folders(files)
    return tuple(files)


def _check_folders(files: list[InputFile]) -> None:
    """No name may be a folder of another (``a`` and ``a/b``): one of them could not be made."""
    names = {f.name for f in files}
    for f in files:
        parts = f.name.split("/")
        for depth in range(1, len(parts)):
            folder = "/".join(parts[:depth])
            if folder in names:
                raise _invalid(
                    f"input names {echo(folder)} and {echo(f.name)} clash: the first is a file "
                    "and the second needs it to be a folder; rename one of them"
                )


def _check_uri(uri: Any, where: str, limits: Limits, output_bucket: str) -> str:
    if not isinstance(uri, str):
        raise _invalid(f"{where}.uri must be a gs:// URI string")
    try:
        bucket, key = gsuri.split(uri)
    except ValueError:
        raise _invalid(
            f"{where}.uri {echo(uri)} is not gs://bucket/path/to/file (a bucket name of "
            "3-222 lower-case characters, and an object name)"
        ) from None
    if len(key.encode("utf-8")) > MAX_OBJECT_NAME_BYTES or "\n" in key or "\r" in key:
        raise _invalid(
            f"{where}.uri {echo(uri)} is not a valid GCS object name (at most "
            f"{MAX_OBJECT_NAME_BYTES} bytes, no line breaks)"
        )
    allowed = limits.allowed_input_buckets or (output_bucket,)
    if "*" not in allowed and bucket not in allowed:
        raise _invalid(
            f"{where}.uri is in bucket {bucket!r}, which this worker may not read; "
            f"allowed buckets: {sorted(allowed)} (ALLOWED_INPUT_BUCKETS)"
        )
    return uri


def check_metadata(raw: Any, max_bytes: int) -> Mapping[str, Any]:
    if not isinstance(raw, dict):
        raise _invalid('"metadata" must be a JSON object')
    size = len(jsonsafe.dumps(raw))
    if size > max_bytes:
        raise _invalid(f'"metadata" is {size} bytes; the limit is {max_bytes} (MAX_METADATA_BYTES)')
    return raw


def check_workflow(raw: Any) -> dict[str, Any]:
    """The shape of an API-format prompt; ComfyUI's own validation comes later, in the executor."""
    if isinstance(raw, dict) and "nodes" in raw and "links" in raw:
        raise _invalid(
            'the workflow is in ComfyUI\'s UI format (it has "nodes" and "links"); '
            "export it with Workflow > Export (API) and send that"
        )
    if not isinstance(raw, dict) or not raw:
        raise _invalid(
            "the workflow must be a non-empty object of node id -> "
            '{"class_type": ..., "inputs": {...}} (ComfyUI API format)'
        )
    for node_id, node in raw.items():
        if (
            not isinstance(node, dict)
            or not isinstance(node.get("class_type"), str)
            or not isinstance(node.get("inputs", {}), dict)
        ):
            raise _invalid(
                f'workflow node {echo(node_id)} must be {{"class_type": "...", "inputs": {{...}}}}'
            )
    return raw
