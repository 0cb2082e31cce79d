"""Upload a job's produced files under deterministic names with the right content types."""

from __future__ import annotations

import mimetypes
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from worker.adapters.storage.base import ObjectStore
from worker.errors import ErrorType, JobFailed
from worker.message.bounded import echo
from worker.message.job import ProducedFile, StoredOutput
from worker.message.validate import check_name
from worker.record.result import RESULT_NAME

# Types the platform's mimetypes table may lack or get wrong for ComfyUI's outputs.
_TYPES = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".webp": "image/webp",
    ".gif": "image/gif",
    ".apng": "image/apng",
    ".avif": "image/avif",
    ".bmp": "image/bmp",
    ".tif": "image/tiff",
    ".tiff": "image/tiff",
    ".exr": "image/x-exr",
    ".mp4": "video/mp4",
    ".webm": "video/webm",
    ".mov": "video/quicktime",
    ".mkv": "video/x-matroska",
    ".flac": "audio/flac",
    ".wav": "audio/wav",
    ".mp3": "audio/mpeg",
    ".ogg": "audio/ogg",
    ".opus": "audio/opus",
    ".m4a": "audio/mp4",
    ".txt": "text/plain; charset=utf-8",
    ".json": "application/json",
    ".glb": "model/gltf-binary",
    ".gltf": "model/gltf+json",
    ".obj": "model/obj",
    ".safetensors": "application/octet-stream",
    ".latent": "application/octet-stream",
    ".svg": "image/svg+xml",
}
UPLOAD_THREADS = 4


def content_type(name: str, given: str | None = None) -> str:
    if given:
        return given
    suffix = "." + name.rsplit(".", 1)[-1].lower() if "." in name else ""
    return _TYPES.get(suffix) or mimetypes.guess_type(name)[0] or "application/octet-stream"


SEPARATOR = "__"  # a sub/folder/name.png output becomes sub__folder__name.png
MAX_OBJECT_NAME_BYTES = 1024  # GCS's limit for a whole object name


def object_name(produced: ProducedFile) -> str:
    """The file's object name in the job folder: one path segment, deterministic, never a
    reserved name (``result.json``, or a dot-name: markers such as ``.attempt-1.json``).

    One segment is what keeps a job's objects out of every other job's folder
    (``worker.message.namespace``): ``K/result.json`` would otherwise land in job ``K``'s folder.
    """
    try:
        name = check_name(produced.name, "output")
    except JobFailed as exc:
        raise JobFailed(
            ErrorType.EXECUTION_ERROR,
            f"node {produced.node_id} wrote an output with an unsafe name: {exc.message}",
            node_id=produced.node_id,
        ) from exc
    flat = SEPARATOR.join(name.split("/"))
    return f"_{flat}" if flat.startswith(".") or flat == RESULT_NAME else flat


def object_names(files: Sequence[ProducedFile], folder: str) -> list[str]:
    """``object_name`` of each file; two files with one name, or a name too long for GCS, fail
    the job (an output must never be silently replaced or dropped)."""
    names = [object_name(f) for f in files]
    first: dict[str, ProducedFile] = {}
    for produced, name in zip(files, names, strict=True):
        other = first.setdefault(name, produced)
        if other is not produced:
            raise JobFailed(
                ErrorType.EXECUTION_ERROR,
                f"outputs {echo(other.name)} and {echo(produced.name)} would both be stored as "
                f"{echo(name)} (sub-folders are flattened with {SEPARATOR!r}): give them "
                "distinct file names",
                node_id=produced.node_id,
            )
        key = f"{folder}/{name}".split("/", 3)[-1]
        if len(key.encode("utf-8")) > MAX_OBJECT_NAME_BYTES:
            raise JobFailed(
                ErrorType.EXECUTION_ERROR,
                f"output {echo(produced.name)} makes an object name over GCS's "
                f"{MAX_OBJECT_NAME_BYTES} bytes: use a shorter file name, prefix or job id",
                node_id=produced.node_id,
            )
    return names


def upload(files: Sequence[ProducedFile], folder: str, store: ObjectStore) -> list[StoredOutput]:
    """Upload every file (a few at a time); return them in the executor's order."""
    names = object_names(files, folder)

    def one(item: tuple[ProducedFile, str]) -> StoredOutput:
        produced, name = item
        ctype = content_type(name, produced.content_type)
        info = store.put_file_once(f"{folder}/{name}", produced.path, ctype)
        return StoredOutput(
            uri=info.uri,
            name=name,
            content_type=info.content_type,
            size=info.size,
            crc32c=info.crc32c,
            md5=info.md5,
            kind=produced.kind,
            node_id=produced.node_id,
        )

    if len(files) <= 1:
        return [one(item) for item in zip(files, names, strict=True)]
    with ThreadPoolExecutor(min(UPLOAD_THREADS, len(files)), "upload") as pool:
        return list(pool.map(one, zip(files, names, strict=True)))
