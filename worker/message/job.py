"""Frozen values that flow through the worker. No google.* imports here.

A Pub/Sub message (or a manifest line) becomes a ``Delivery``; parsing turns its bytes into a
``Job`` once (``worker.message.parse``); the executor turns a ``Job`` into ``ProducedFile``s; the
store turns those into ``StoredOutput``s, which the result document lists.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

JobForm = Literal["v1", "runpod"]
OutputKind = Literal["image", "video", "audio", "text", "file"]
ImageFormat = Literal["png", "webp", "jpeg"]


@dataclass(frozen=True)
class Delivery:
    """One received message, as any job source hands it over.

    ``handle`` is the source's own token (a Pub/Sub ack id, a manifest line number); only the
    source that produced it reads it.
    """

    message_id: str
    data: bytes
    attributes: Mapping[str, str]
    delivery_attempt: int | None
    handle: object = field(repr=False, compare=False)
    source: str = "pubsub"
    published_at: float | None = None  # epoch seconds the producer published it (Pub/Sub)
    # The last delivery before the dead-letter topic: a transient failure then writes a
    # retries_exhausted result instead of handing the message back.
    final_attempt: bool = False


@dataclass(frozen=True)
class InputFile:
    """A file the workflow's loaders read, staged into the job's own input directory.

    Exactly one of ``uri`` (``gs://bucket/key``) and ``data`` (base64 text) is set. ``name`` is a
    relative path that has already been checked for traversal.
    """

    name: str
    uri: str | None = None
    data: str | None = None


@dataclass(frozen=True)
class ModelSpec:
    """A model the job brings: fetched into the model cache before it runs (``worker.models``).

    ``uri`` is ``gs://bucket/key`` or ``https://host/path``; ``folder`` a ComfyUI model folder;
    ``name`` a single file name, what the workflow's loader names. All checked at parse time
    (``worker.models.spec``).
    """

    uri: str
    folder: str
    name: str
    sha256: str | None = None  # lower-case hex; required for https


@dataclass(frozen=True)
class ModelFile:
    """A job's model as the executor shows it: ``folder/name`` is ``path`` (in the cache)."""

    folder: str
    name: str
    path: Path
    sha256: str


@dataclass(frozen=True)
class OutputFormat:
    """How image outputs are stored: PNG as ComfyUI saved them, or converted after execution."""

    format: ImageFormat = "png"
    quality: int | None = None  # 1-100 (webp, jpeg); None: the default (90)
    lossless: bool = False  # webp only
    keep_metadata: bool = False  # carry the PNG's text (workflow, prompt) over as EXIF


@dataclass(frozen=True)
class Job:
    """A parsed, validated job. ``workflow`` is a ComfyUI API-format prompt.

    When the message named a pipeline, ``workflow`` is the rendered template and ``pipeline`` /
    ``params`` record what was asked for (with defaults and the seed filled in).
    """

    job_id: str
    workflow: Mapping[str, Any]
    inputs: tuple[InputFile, ...] = ()
    output_prefix: str = ""
    metadata: Mapping[str, Any] = field(default_factory=dict)
    form: JobForm = "v1"
    pipeline: str | None = None
    params: Mapping[str, Any] | None = None
    warnings: tuple[str, ...] = ()  # things the message asked for that this worker ignores
    models: tuple[ModelSpec, ...] = ()
    output_format: OutputFormat = field(default_factory=OutputFormat)
    # What the message runs (``worker.message.fingerprint``): tells a redelivery from another
    # job under the same id.
    fingerprint: str | None = None


@dataclass(frozen=True)
class ProducedFile:
    """A file an executor wrote for a job, before upload.

    ``name`` is the deterministic relative name the file gets under the job's output folder: the
    same job run twice yields the same names.
    """

    path: Path
    name: str
    kind: OutputKind
    node_id: str | None = None
    content_type: str | None = None


@dataclass(frozen=True)
class StoredOutput:
    """An output as it lies in the object store: what ``result.json`` lists."""

    uri: str
    name: str
    content_type: str
    size: int
    crc32c: str | None
    md5: str | None
    kind: OutputKind
    node_id: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "uri": self.uri,
            "name": self.name,
            "content_type": self.content_type,
            "size": self.size,
            "crc32c": self.crc32c,
            "md5": self.md5,
            "kind": self.kind,
            "node_id": self.node_id,
        }
