"""Collect what a run produced: every file output nodes saved, and their text.

``history["outputs"]`` maps a node id to its UI output: lists of file references
(``{"filename", "subfolder", "type"}``) under keys that differ per node (``images``, ``gifs``,
``audio``, ``video``, ``files``, ``latents``, ...), and text under ``text``. Files of type
``output`` are job outputs; ``temp`` files are previews and are not. Files a node saved without
reporting them (some custom nodes do) are picked up by sweeping ComfyUI's output directory,
which holds this job's files alone (the sweep never follows a symbolic link). A reported file
that is missing fails the job. Text becomes a ``.txt`` file of kind ``text``.

Names are the path relative to the output directory (``ComfyUI_00001_.png``, ``sub/a.mp4``) and
``text/<node>_<n>.txt``: ComfyUI numbers files from 1 in an empty directory, so one job run twice
yields the same names.
"""

from __future__ import annotations

import mimetypes
import os
import re
import shutil
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from worker.errors import ErrorType, JobFailed
from worker.message.bounded import echo
from worker.message.job import OutputKind, ProducedFile

_TYPES = {  # what mimetypes gets wrong or doesn't know
    ".webp": "image/webp",
    ".webm": "video/webm",
    ".mkv": "video/x-matroska",
    ".flac": "audio/flac",
    ".opus": "audio/ogg",
    ".ogg": "audio/ogg",
    ".mp3": "audio/mpeg",
    ".m4a": "audio/mp4",
    ".wav": "audio/wav",
    ".glb": "model/gltf-binary",
    ".gltf": "model/gltf+json",
    ".obj": "model/obj",
    ".txt": "text/plain; charset=utf-8",
    ".md": "text/markdown; charset=utf-8",
    ".csv": "text/csv; charset=utf-8",
    ".json": "application/json",
    ".latent": "application/octet-stream",
    ".safetensors": "application/octet-stream",
    ".svg": "image/svg+xml",
}


def content_type(name: str) -> str:
    suffix = PurePosixPath(name).suffix.lower()
    if suffix in _TYPES:
        return _TYPES[suffix]
    guessed, _ = mimetypes.guess_type(name, strict=False)
    return guessed or "application/octet-stream"


def kind_of(ctype: str) -> OutputKind:
    major = ctype.split("/", 1)[0]
    if major in ("image", "video", "audio", "text"):
        return major  # type: ignore[return-value]  # the four literals of OutputKind
    return "file"


@dataclass(frozen=True)
class FileRef:
    """A file a node reported, relative to ComfyUI's output directory."""

    node_id: str | None
    relpath: str


def file_refs(history_outputs: Mapping[str, Any]) -> list[FileRef]:
    """Every ``type: output`` file reference in the UI outputs, in node order, no duplicates."""
    refs: list[FileRef] = []
    seen: set[str] = set()
    for node_id, ui in history_outputs.items():
        if not isinstance(ui, Mapping):
            continue
        for value in ui.values():
            for item in value if isinstance(value, list | tuple) else ():
                rel = _relpath(item)
                if rel is not None and rel not in seen:
                    seen.add(rel)
                    refs.append(FileRef(str(node_id), rel))
    return refs


def _relpath(item: Any) -> str | None:
    if not isinstance(item, Mapping) or not isinstance(item.get("filename"), str):
        return None
    if item.get("type", "output") != "output":
        return None  # temp (previews) and input files are not job outputs
    parts = [p for p in str(item.get("subfolder") or "").split("/") if p] + [item["filename"]]
    if any(p in ("..", ".") or "\\" in p for p in parts):
        return None  # never follow a reference out of the output directory
    return "/".join(parts)


def texts(history_outputs: Mapping[str, Any], refs: Iterable[FileRef]) -> list[tuple[str, str]]:
    """(node id, text) for nodes that showed text and saved no file (SaveText does both)."""
    with_files = {r.node_id for r in refs}
    out: list[tuple[str, str]] = []
    for node_id, ui in history_outputs.items():
        if not isinstance(ui, Mapping) or str(node_id) in with_files:
            continue
        value = ui.get("text")
        items = value if isinstance(value, list | tuple) else [] if value is None else [value]
        out.extend((str(node_id), str(v)) for v in items)
    return out


def safe_name(node_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", node_id)


def sweep(directory: Path) -> list[str]:
    """Regular files under ``directory`` (relative, sorted), never following a symbolic link:
    a node that links ``/etc/passwd`` into its output folder uploads nothing."""
    found: list[str] = []
    for root, dirs, files in os.walk(directory, followlinks=False):
        base = Path(root)
        dirs[:] = [d for d in dirs if not (base / d).is_symlink()]
        for name in files:
            if stat.S_ISREG((base / name).lstat().st_mode):
                found.append((base / name).relative_to(directory).as_posix())
    return sorted(found)


def _reported_file(comfy_output: Path, ref: FileRef) -> Path:
    """The reported file, which must be a regular file inside the output folder."""
    source = comfy_output / ref.relpath
    where = f"node {ref.node_id} reported the output {echo(ref.relpath)}"
    try:
        info = source.lstat()
        inside = source.resolve(strict=True).is_relative_to(comfy_output.resolve())
    except (OSError, RuntimeError):
        raise _failed(f"{where}, which it did not write", ref.node_id) from None
    if stat.S_ISLNK(info.st_mode) or not inside or not stat.S_ISREG(info.st_mode):
        raise _failed(f"{where}, which is not a regular file in its output folder", ref.node_id)
    return source


def _failed(message: str, node_id: str | None) -> JobFailed:
    return JobFailed(ErrorType.EXECUTION_ERROR, message, node_id=node_id)


def collect(
    history_outputs: Mapping[str, Any],
    comfy_output: Path,
    job_output: Path,
    cached: Iterable[str] = (),
) -> list[ProducedFile]:
    """Move this run's files from ComfyUI's output directory into the job's, and list them.

    Reported files come first (with their node id), then unreported ones found by the sweep,
    then text outputs. A reported file that is missing (or a link) fails the job: a result that
    silently lacks an output would claim a success the job did not have. Nodes in ``cached``
    did not run for this job: what their cached UI names belongs to an earlier one.
    """
    skip = set(cached)
    refs = [r for r in file_refs(history_outputs) if r.node_id not in skip]
    known = {r.relpath for r in refs}
    found = [(r.node_id, _reported_file(comfy_output, r), r.relpath) for r in refs]
    found += [(None, comfy_output / rel, rel) for rel in sweep(comfy_output) if rel not in known]
    produced: list[ProducedFile] = []
    for node_id, source, rel in found:
        dest = job_output / rel
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(source, dest)
        except OSError as exc:
            raise _failed(
                f"output {echo(rel)} could not be collected ({exc.strerror or exc})", node_id
            ) from exc
        ctype = content_type(rel)
        produced.append(ProducedFile(dest, rel, kind_of(ctype), node_id, ctype))
    counters: dict[str, int] = {}
    for node_id, text in texts(history_outputs, refs):
        n = counters[node_id] = counters.get(node_id, 0) + 1
        rel = f"text/{safe_name(node_id)}_{n}.txt"
        dest = job_output / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text(text, encoding="utf-8", errors="replace")
        produced.append(ProducedFile(dest, rel, "text", node_id, _TYPES[".txt"]))
    return produced
