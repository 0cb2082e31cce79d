"""The model manifest: which files ComfyUI needs, where they come from, what they must be.

A JSON document (a file, or a ``gs://`` object)::

    {"models": [
      {"source": "gs://my-models/sd15/v1-5-pruned-emaonly.safetensors",
       "folder": "checkpoints",                 # a ComfyUI model folder
       "name": "v1-5-pruned-emaonly.safetensors",  # optional; default: the source's file name
       "size": 4265146304,
       "sha256": "cc6cb27103417325ff94f52b7a5d2dde45a7515b25c255d8e396c90014281516"}
    ]}

Each entry needs ``size`` and a checksum: ``sha256`` (hex, what model hubs publish) or
``crc32c`` (base64, what ``gcloud storage objects describe`` prints). A bare list is accepted too.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from worker.errors import ConfigError

_FOLDER = re.compile(r"[a-z0-9_]{1,64}")
_SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class ModelEntry:
    source: str  # gs://bucket/key
    folder: str  # ComfyUI model folder, e.g. checkpoints
    name: str  # relative path inside the folder
    size: int
    sha256: str | None = None
    crc32c: str | None = None  # base64 of the big-endian CRC32C, as GCS reports it

    @property
    def relpath(self) -> str:
        return f"{self.folder}/{self.name}"

    def path_in(self, cache_dir: Path) -> Path:
        return cache_dir / self.folder / self.name

    def checksum(self) -> tuple[str, str]:
        """(algorithm, expected value)."""
        if self.sha256 is not None:
            return "sha256", self.sha256
        assert self.crc32c is not None
        return "crc32c", self.crc32c


def _entry(i: int, raw: Any) -> ModelEntry:
    where = f"model #{i + 1}"
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: must be an object with source, folder, size and sha256")
    source = raw.get("source")
    if not isinstance(source, str) or not re.fullmatch(r"gs://[a-z0-9][a-z0-9._-]+/.+", source):
        raise ConfigError(f"{where}: source must be a gs://bucket/path URI, got {source!r}")
    where = f"model #{i + 1} ({source})"
    folder = raw.get("folder")
    if not isinstance(folder, str) or not _FOLDER.fullmatch(folder):
        raise ConfigError(
            f"{where}: folder must be a ComfyUI model folder such as checkpoints, "
            f"loras, vae; got {folder!r}"
        )
    name = raw.get("name", PurePosixPath(source).name)
    parts = PurePosixPath(name).parts if isinstance(name, str) else ()
    if not parts or name.startswith("/") or any(p in ("..", ".") for p in parts):
        raise ConfigError(f"{where}: name must be a relative path inside the folder, got {name!r}")
    size = raw.get("size")
    if not isinstance(size, int) or isinstance(size, bool) or size <= 0:
        raise ConfigError(f"{where}: size must be the file's size in bytes, got {size!r}")
    sha256, crc32c = raw.get("sha256"), raw.get("crc32c")
    if sha256 is not None and not (isinstance(sha256, str) and _SHA256.fullmatch(sha256.lower())):
        raise ConfigError(f"{where}: sha256 must be 64 hex digits")
    if crc32c is not None and not _valid_crc32c(crc32c):
        raise ConfigError(f"{where}: crc32c must be base64 of 4 bytes (as GCS shows it)")
    if sha256 is None and crc32c is None:
        raise ConfigError(f"{where}: needs a checksum: sha256 (hex) or crc32c (base64)")
    return ModelEntry(
        source, folder, str(name), size, sha256.lower() if isinstance(sha256, str) else None, crc32c
    )


def _valid_crc32c(value: Any) -> bool:
    try:
        return isinstance(value, str) and len(base64.b64decode(value, validate=True)) == 4
    except (binascii.Error, ValueError):
        return False


def parse(raw: bytes | str, origin: str = "MODEL_MANIFEST") -> tuple[ModelEntry, ...]:
    """Entries of a manifest document; ``ConfigError`` naming the entry and field if invalid."""
    try:
        doc = json.loads(raw)
    except ValueError as exc:
        raise ConfigError(f"{origin}: not valid JSON: {exc}") from exc
    items = doc.get("models") if isinstance(doc, dict) else doc
    if not isinstance(items, list):
        raise ConfigError(f'{origin}: expected {{"models": [...]}} or a list of models')
    try:
        entries = tuple(_entry(i, item) for i, item in enumerate(items))
    except ConfigError as exc:
        raise ConfigError(f"{origin}: {exc}") from exc
    seen: dict[str, str] = {}
    for e in entries:
        if e.relpath in seen and seen[e.relpath] != e.source:
            raise ConfigError(
                f"{origin}: {e.relpath} comes from both {seen[e.relpath]} and {e.source}"
            )
        seen[e.relpath] = e.source
    return entries
