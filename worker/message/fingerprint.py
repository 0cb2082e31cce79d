"""What makes two messages the same job: a digest of what a job runs, for telling a redelivery
from a second job that reuses a job id.

Pub/Sub delivers at least once, so a job id seen again is usually the same message again, and
the job's folder already holds its result (announced again) or an earlier attempt's outputs
(kept: they are write-once). A message with other content under a job id already used is not a
redelivery: it would get the first job's result, or a mix of both jobs' outputs. The job folder's
``.namespace`` marker keeps the digest of the first message (``worker.message.namespace``), and a
message whose digest differs is refused, naming the clash.

The digest covers the canonical JSON of the body (keys sorted, no whitespace) without what does
not change what runs: ``job_id`` and ``output.prefix`` (the folder already says them, and
``"a/"`` is the folder of ``"a"``), ``version``, ``metadata`` (only echoed back: a producer may
stamp each send), and the Runpod delivery options the worker ignores. Base64 inputs are hashed
on their own first: ``hashlib`` lets go of the GIL on large buffers, ``json.dumps`` of a 10 MB
string would not (the rest is one ``json.dumps``, in C, as the parse was).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

NOT_THE_JOB = frozenset({"job_id", "version", "metadata", "webhook", "policy"})
LONG_TEXT = 4096  # strings from this many characters on enter the digest as their own sha256


def fingerprint(body: Mapping[str, Any]) -> str:
    """``sha256:<hex>`` of what ``body`` runs; equal for every delivery of one message."""
    identity = {key: value for key, value in body.items() if key not in NOT_THE_JOB}
    output = identity.pop("output", None)
    if isinstance(output, dict):  # {"output": {"prefix": "p"}} runs as no "output" at all
        output = {key: value for key, value in output.items() if key != "prefix"} or None
    if output is not None:
        identity["output"] = output
    if isinstance(identity.get("inputs"), list):
        identity["inputs"] = _files(identity["inputs"], "data")
    inner = identity.get("input")
    if isinstance(inner, dict) and isinstance(inner.get("images"), list):
        identity["input"] = {**inner, "images": _files(inner["images"], "image")}
    text = json.dumps(identity, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def of_refused(digest: str | None) -> str | None:
    """The fingerprint a refused message claims its folder with: never a runnable job's. A
    message refused for its prefix is recorded in the folder of its id without the prefix,
    and must not pass for the job that owns that folder (its digest leaves the prefix out)."""
    return None if digest is None else f"refused:{digest}"


def _files(items: list[Any], key: str) -> list[Any]:
    """Input files with their base64 text (where a message's size is) as its own digest."""
    return [
        {**item, key: _short(item[key])} if isinstance(item, dict) and key in item else item
        for item in items
    ]


def _short(value: Any) -> Any:
    if not isinstance(value, str) or len(value) < LONG_TEXT:
        return value
    digest = hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()
    return f"\x00sha256:{digest}:{len(value)}"
