"""The ``models`` field of a job message: each entry checked, or ``invalid_job`` saying why.

``{"uri": "gs://bucket/key" | "https://host/path", "folder": "loras", "name": "x.safetensors",
"sha256": "<64 hex>"}``:

- ``uri``: ``gs://`` from a bucket of ``ALLOWED_MODEL_BUCKETS``, or ``https://`` on a host of
  ``ALLOWED_MODEL_HOSTS``; no user name or password in it, no fragment. Query strings are allowed
  (some hosts need them) but never logged or echoed: use ``MODEL_HOST_TOKENS`` for credentials.
- ``folder``: a ComfyUI model folder name (``checkpoints``, ``loras``, ``vae``, ...); the
  executor checks that ComfyUI has it.
- ``name``: one file name, no path: ``A-Z a-z 0-9`` then also space ``. _ ( ) + -``, at most 200
  characters, ending in a model extension ComfyUI lists: ``.safetensors``/``.sft`` for https
  (pickle-based formats run code when loaded, and an https host serves anyone's uploads), any of
  ComfyUI's (``.ckpt .pt .pt2 .bin .pth .pkl`` too) from an allow-listed bucket.
- ``sha256``: required for https; optional for gs://, where the object's CRC32C is checked.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from worker.adapters.storage import uri as gsuri
from worker.config import Limits
from worker.errors import ErrorType, JobFailed
from worker.message.bounded import echo
from worker.message.job import ModelSpec
from worker.models.netpolicy import DEFAULT_PORT, host_allowed

FOLDER = re.compile(r"[a-z][a-z0-9_]{0,63}")
NOT_MODEL_FOLDERS = frozenset({"custom_nodes", "configs", "datasets", "diffusers", "classifiers"})
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ._()+-]{0,199}")
SHA256 = re.compile(r"[0-9a-fA-F]{64}")
SAFE_EXTENSIONS = (".safetensors", ".sft")
GCS_EXTENSIONS = (*SAFE_EXTENSIONS, ".ckpt", ".pt", ".pt2", ".bin", ".pth", ".pkl")
MAX_URI_CHARS = 2048
_HOST = re.compile(r"[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?")
FIELDS = {"uri", "folder", "name", "sha256"}


def _invalid(message: str) -> JobFailed:
    return JobFailed(ErrorType.INVALID_JOB, message)


def redact(uri: str) -> str:
    """``uri`` without its query string (which may hold a signature or a token), for messages."""
    base, mark, _ = uri.partition("?")
    return f"{base}?..." if mark else base


def check_models(raw: Any, limits: Limits) -> tuple[ModelSpec, ...]:
    if not isinstance(raw, list):
        raise _invalid(
            '"models" must be a list of {"uri", "folder", "name", "sha256"}, e.g. '
            '[{"uri": "gs://bucket/lora.safetensors", "folder": "loras", '
            '"name": "lora.safetensors"}]'
        )
    if len(raw) > limits.max_models:
        raise _invalid(f"{len(raw)} models; the limit is {limits.max_models} (MAX_MODELS)")
    specs: list[ModelSpec] = []
    seen: set[tuple[str, str]] = set()
    for i, item in enumerate(raw):
        spec = check_model(item, f"models[{i}]", limits)
        if (spec.folder, spec.name) in seen:
            raise _invalid(f"models[{i}]: {spec.folder}/{spec.name} appears twice")
        seen.add((spec.folder, spec.name))
        specs.append(spec)
    return tuple(specs)


def check_model(item: Any, where: str, limits: Limits) -> ModelSpec:
    if not isinstance(item, dict) or not {"uri", "folder", "name"} <= item.keys():
        raise _invalid(f'{where} must be {{"uri", "folder", "name"}} and, for https, "sha256"')
    if extra := sorted(set(item) - FIELDS):
        raise _invalid(f"{where}: unknown field(s) {echo(extra)}; a model has {sorted(FIELDS)}")
    uri = item["uri"]
    https = isinstance(uri, str) and uri.startswith("https://")
    if https:
        _check_https(uri, where, limits)
    else:
        _check_gs(uri, where, limits)
    folder = item["folder"]
    if not isinstance(folder, str) or not FOLDER.fullmatch(folder) or folder in NOT_MODEL_FOLDERS:
        raise _invalid(
            f"{where}.folder {echo(folder)} is not a ComfyUI model folder such as checkpoints, "
            "loras, vae, controlnet, upscale_models, embeddings"
        )
    name = check_name(item["name"], where, SAFE_EXTENSIONS if https else GCS_EXTENSIONS)
    sha256 = item.get("sha256")
    if sha256 is None and https:
        raise _invalid(
            f"{where}.sha256 is required for an https model: the file's SHA-256 as 64 hex "
            "digits (model hubs list it)"
        )
    if sha256 is not None and (not isinstance(sha256, str) or not SHA256.fullmatch(sha256)):
        raise _invalid(f"{where}.sha256 {echo(sha256)} must be 64 hex digits")
    return ModelSpec(uri, folder, name, sha256.lower() if sha256 else None)


def check_name(name: Any, where: str, extensions: tuple[str, ...]) -> str:
    if not isinstance(name, str) or not NAME.fullmatch(name) or name.endswith((" ", ".")):
        raise _invalid(
            f"{where}.name {echo(name)} is not a safe file name: one name, no folders, "
            "starting with a letter or digit, then letters, digits, space and . _ ( ) + -, "
            "at most 200 characters"
        )
    if not name.lower().endswith(extensions):
        raise _invalid(
            f"{where}.name {echo(name)} must end with one of {', '.join(extensions)}"
            + (" (https models: safetensors only)" if extensions == SAFE_EXTENSIONS else "")
        )
    return name


def _check_gs(uri: Any, where: str, limits: Limits) -> None:
    try:
        bucket, key = gsuri.split(uri) if isinstance(uri, str) else ("", "")
    except ValueError:
        bucket, key = "", ""
    if not key or len(key.encode("utf-8")) > 1024 or any(c in key for c in "\r\n"):
        raise _invalid(f"{where}.uri {echo(uri)} is neither gs://bucket/path nor an https:// URL")
    allowed = limits.allowed_model_buckets
    if "*" not in allowed and bucket not in allowed:
        raise _invalid(
            f"{where}.uri is in bucket {bucket!r}, which models may not come from; allowed: "
            f"{sorted(allowed) or 'none'} (ALLOWED_MODEL_BUCKETS)"
        )


def _check_https(uri: str, where: str, limits: Limits) -> None:
    shown = echo(redact(uri))
    if len(uri) > MAX_URI_CHARS or any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in uri):
        raise _invalid(f"{where}.uri {shown} is too long or holds spaces or control characters")
    try:
        parts = urlsplit(uri)
        port = parts.port if parts.port is not None else DEFAULT_PORT
    except ValueError:
        raise _invalid(f"{where}.uri {shown} is not a valid URL") from None
    host = parts.hostname or ""
    if "@" in parts.netloc:
        raise _invalid(
            f"{where}.uri {shown} carries a user name or password: credentials go in "
            "MODEL_HOST_TOKENS, never in a job"
        )
    if parts.fragment or not parts.path.strip("/") or not _HOST.fullmatch(host):
        raise _invalid(f"{where}.uri {shown} must be https://host/path, without a #fragment")
    if not host_allowed(host, port, limits.allowed_model_hosts):
        shown_host = host if port == DEFAULT_PORT else f"{host}:{port}"
        raise _invalid(
            f"{where}.uri is on host {shown_host!r}, which models may not come from; allowed: "
            f"{list(limits.allowed_model_hosts) or 'none'} (ALLOWED_MODEL_HOSTS)"
        )
