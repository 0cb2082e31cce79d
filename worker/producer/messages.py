"""Build job messages for ``submit``: from a workflow file, a pipeline and its ``--param``s, a
Runpod request body, or the lines of a JSONL file.

Local files never travel inside a message: an input given as a local path (``--input PATH``, a
``{"name", "path"}`` entry in a message's ``inputs``, or ``--param image=@PATH``) is uploaded to
``SUBMIT_INPUT_URI`` (default ``<OUTPUT_URI>/_inputs``) under its SHA-256, once, and the message
names its ``gs://`` URI. Every message gets a job id (its own, or ``<batch>-<n>``), sent both in
the body (v1) and as the ``job_id`` attribute (which the Runpod form relies on).
"""

from __future__ import annotations

import hashlib
import json
import mimetypes
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from worker.adapters.storage.base import ObjectStore
from worker.config import PUBSUB_MAX_MESSAGE_BYTES


class SubmitError(Exception):
    """The command line or an input file is wrong; the message says where and how to fix it."""


@dataclass(frozen=True)
class Outgoing:
    job_id: str
    data: bytes
    attributes: dict[str, str]


def new_batch_id() -> str:
    """``20260101-120000-1a2b3c4d``: sorts by time, unique enough for one person's submits."""
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + secrets.token_hex(4)


class Uploader:
    """Uploads local input files once each, content-addressed, and remembers their URIs."""

    def __init__(self, store: ObjectStore | None, base_uri: str | None) -> None:
        self.store = store
        self.base_uri = base_uri.rstrip("/") if base_uri else None
        self._done: dict[Path, str] = {}

    def upload(self, path: Path) -> str:
        path = path.expanduser().resolve()
        if path in self._done:
            return self._done[path]
        if not path.is_file():
            raise SubmitError(f"input file {path} does not exist")
        if self.store is None or self.base_uri is None:
            raise SubmitError("local input files need SUBMIT_INPUT_URI or OUTPUT_URI to go to")
        digest = hashlib.sha256()
        with path.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
        uri = f"{self.base_uri}/{digest.hexdigest()[:32]}/{path.name}"
        if self.store.stat(uri) is None:
            content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
            self.store.put_file_once(uri, path, content_type)
        self._done[path] = uri
        return uri


def read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SubmitError(f"can't read {what} {path}: {exc.strerror}") from exc
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SubmitError(f"{what} {path} is not valid JSON: {exc}") from exc


def workflow_from_file(path: Path) -> dict[str, Any]:
    """An API-format prompt. The UI's own format is refused with the way to export the other."""
    doc = read_json(path, "workflow file")
    if isinstance(doc, dict) and "nodes" in doc and "links" in doc:
        raise SubmitError(
            f"{path} is a ComfyUI UI workflow; export it with Workflow > Export (API) instead"
        )
    if isinstance(doc, dict) and ("workflow" in doc or "input" in doc):
        raise SubmitError(f"{path} is a whole job message: submit it with --jsonl (one line)")
    if not isinstance(doc, dict) or not doc:
        raise SubmitError(
            f"{path} must be an API-format workflow: {{node_id: {{class_type, ...}}}}"
        )
    return doc


def jsonl_bodies(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(line number, message)`` for each non-blank line; stops at the first bad line."""
    try:
        handle = path.open(encoding="utf-8")
    except OSError as exc:
        raise SubmitError(f"can't read {path}: {exc.strerror}") from exc
    with handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                body = json.loads(line)
            except json.JSONDecodeError as exc:
                raise SubmitError(f"{path} line {number}: not valid JSON: {exc}") from exc
            if not isinstance(body, dict):
                raise SubmitError(f"{path} line {number}: a job message must be a JSON object")
            yield number, body


def resolve_local_inputs(body: dict[str, Any], base_dir: Path, uploader: Uploader) -> None:
    """Replace ``{"name", "path"}`` inputs of a v1 message by uploaded ``{"name", "uri"}``."""
    inputs = body.get("inputs")
    if not isinstance(inputs, list):
        return
    for i, item in enumerate(inputs):
        if isinstance(item, dict) and "path" in item:
            local = Path(str(item["path"]))
            uri = uploader.upload(local if local.is_absolute() else base_dir / local)
            inputs[i] = {"name": item.get("name") or local.name, "uri": uri}


def outgoing(body: dict[str, Any], job_id: str) -> Outgoing:
    """Fix the job id (the message's own wins) and encode; refuse what Pub/Sub would."""
    runpod = "input" in body and "workflow" not in body and "pipeline" not in body
    own = body.get("job_id")
    if isinstance(own, str) and own:
        job_id = own
    elif not runpod:
        body = {"job_id": job_id, **body}
    data = json.dumps(body, separators=(",", ":")).encode()
    if len(data) > PUBSUB_MAX_MESSAGE_BYTES:
        raise SubmitError(
            f"job {job_id} is {len(data)} bytes, over Pub/Sub's {PUBSUB_MAX_MESSAGE_BYTES}: "
            'give large inputs as local files (--input PATH or {"name", "path"}) so they are '
            "uploaded"
        )
    return Outgoing(job_id, data, {"job_id": job_id})
