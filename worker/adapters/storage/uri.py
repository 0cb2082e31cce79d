"""``gs://bucket/key`` URIs: parse and join, refusing anything that could escape a prefix."""

from __future__ import annotations

import re

_BUCKET = re.compile(r"[a-z0-9][a-z0-9._-]{1,221}[a-z0-9]")


def split(uri: str) -> tuple[str, str]:
    """Return ``(bucket, key)``; raise ``ValueError`` for anything that is not ``gs://b/k``."""
    if not uri.startswith("gs://"):
        raise ValueError(f"{uri!r} is not a gs:// URI")
    bucket, _, key = uri[len("gs://") :].partition("/")
    if not _BUCKET.fullmatch(bucket):
        raise ValueError(f"{uri!r} has an invalid bucket name")
    if not key or key.endswith("/"):
        raise ValueError(f"{uri!r} names no object")
    return bucket, key


def join(base: str, *parts: str) -> str:
    """Join a ``gs://bucket[/prefix]`` base with relative parts (already validated)."""
    pieces = [base.rstrip("/")] + [p.strip("/") for p in parts if p.strip("/")]
    return "/".join(pieces)
