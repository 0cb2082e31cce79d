"""The job namespace: no job can make an object appear under another job's folder.

Layout: ``<OUTPUT_URI>/[prefix/]<job_id>/<name>``. Prefixes are free-form paths (``sub/path``),
so the folder of job (prefix ``P``, id ``J``) is also a prefix level of job (``P/J``, ``K``): no
static rule on names keeps the two apart. Claims do. Each folder level below ``OUTPUT_URI`` gets
its role, for good, from the first job that reaches it: a create-once marker
``<level>/.namespace`` holding ``prefix`` or ``job``. Before a job writes anything it claims
every level above its folder as ``prefix`` and its folder as ``job``; a job whose claim finds the
other role is refused (``invalid_job``, naming the clash).

Why that is enough: a job's objects lie directly in its folder (output names are one path
segment, ``worker.record.outputs.object_name``), so an object of job X is under the folder of job Y
only if Y's folder is X's folder (then X is Y: a folder has one (prefix, id)) or a level above it. A
level above X's folder was claimed ``prefix`` by X and Y's folder was claimed ``job`` by Y; the
markers are create-once, so one of the two claims failed and that job wrote nothing there.

A job folder's marker also keeps the message's fingerprint (``worker.message.fingerprint``):
a redelivery has the same one and finds its folder as it left it; a message with other content
under a job id already used is a second job, and is refused the same way (else it would be
announced as the first job, or leave a mix of both jobs' outputs). A marker without one (written
by ``cancel``, or by an older worker) matches any message. Where the job id is the message id
itself (a producer that sent no id), the folder is the only place its result could go: there it
stays the job it was.

A refused job's result goes where the design puts refused messages: ``<OUTPUT_URI>/<job_id>/``
when its prefix was the unreadable part, else ``<OUTPUT_URI>/<message id>/``. That folder is
claimed too; if even the message id's level is a prefix level (only a sender that guessed a
message id can make it one), the result is written there anyway: a prefix level is no job's
folder.

One instance per process, used from the prefetch thread; levels known to be prefixes are cached.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from worker.adapters.storage.base import ObjectStore
from worker.errors import ErrorType, JobFailed
from worker.message import jsonsafe
from worker.message.bounded import echo
from worker.record.result import job_folder

MARKER = ".namespace"
Role = Literal["job", "prefix"]
_CLAIM_TRIES = 3  # a marker deleted between our create and our read (a lifecycle rule) is rare


@dataclass(frozen=True)
class Placement:
    folder: str  # where this job's objects go
    fresh: bool  # the folder was claimed just now: no earlier attempt can have left anything
    refusal: JobFailed | None = None  # set when the job's own folder could not be claimed


class Namespace:
    def __init__(self, store: ObjectStore, output_uri: str) -> None:
        self._store = store
        self._root = output_uri.rstrip("/")
        self._prefixes: set[str] = set()

    def place(
        self, prefix: str, job_id: str, message_id: str, fingerprint: str | None = None
    ) -> Placement:
        """Claim the folder of job (``prefix``, ``job_id``) for the message ``fingerprint``
        names, or say why it can't have it and where its (failed) result goes instead."""
        folder = job_folder(self._root, prefix, job_id)
        same_place = folder == job_folder(self._root, "", message_id)
        clash, fresh = self._claim_tree(prefix, job_id, fingerprint, strict=not same_place)
        if clash is None:
            return Placement(folder, fresh)
        refusal = JobFailed(
            ErrorType.INVALID_JOB,
            f"the output folder {echo(folder)} is not this job's: {clash}. Choose another "
            "job_id or output.prefix (the result is recorded under the message id)",
        )
        return Placement(self._fallback(message_id), True, refusal)

    def claim_job(self, prefix: str, job_id: str) -> str | None:
        """Claim the folder of job (``prefix``, ``job_id``) as a job would, before writing into
        it from outside the job (``worker.record.cancel``): None when it is a job's folder, else
        what clashed (nothing is written there then)."""
        clash, _ = self._claim_tree(prefix, job_id, None, strict=False)
        return clash

    def place_refused(
        self, job_id: str, prefix: str, message_id: str, fingerprint: str | None = None
    ) -> Placement:
        """Where a message refused by the parser records its result (see the module doc)."""
        placed = self.place(prefix, job_id, message_id, fingerprint)
        return Placement(placed.folder, placed.fresh)

    # -- claims -------------------------------------------------------------------------------

    def _claim_tree(
        self, prefix: str, job_id: str, fingerprint: str | None, strict: bool
    ) -> tuple[str | None, bool]:
        """(what clashed, or None; whether the job folder's marker is new). ``strict``: a job
        folder first claimed for another fingerprint clashes."""
        level = self._root
        for segment in [s for s in prefix.split("/") if s]:
            level = f"{level}/{segment}"
            if level in self._prefixes:
                continue
            found, _, _ = self._claim(level, "prefix")
            if found != "prefix":
                return f"{echo(level)} is the folder of another job", False
            self._prefixes.add(level)
        folder = job_folder(self._root, prefix, job_id)
        if folder in self._prefixes:
            return "it is a prefix level that holds other jobs' folders", False
        found, created, first = self._claim(folder, "job", fingerprint)
        if found != "job":
            if found == "prefix":
                self._prefixes.add(folder)
            return "it is a prefix level that holds other jobs' folders", False
        if strict and None not in (fingerprint, first) and first != fingerprint:
            return (
                f"job_id {echo(job_id)} was already used by a message with other content (a "
                "different workflow, pipeline, params, inputs, models or output); a redelivery "
                "carries the same content, so this is another job and needs its own job_id"
            ), False
        return None, created

    def _claim(
        self, level: str, role: Role, fingerprint: str | None = None
    ) -> tuple[str, bool, str | None]:
        """(the level's role, whether this call set it, the fingerprint its marker keeps)."""
        uri = f"{level}/{MARKER}"
        doc = {"role": role, "claimed_at": datetime.now(UTC).isoformat(), "nonce": uuid.uuid4().hex}
        if fingerprint is not None:
            doc["fingerprint"] = fingerprint
        body = jsonsafe.dumps(doc)
        for _ in range(_CLAIM_TRIES):
            if self._store.put_bytes_once(uri, body, "application/json") is not None:
                return role, True, fingerprint
            data = self._store.get_bytes(uri, 4096)
            if data is not None:
                found, first = _read_marker(data)
                return found, False, first
        return "unknown", False, None

    def _fallback(self, message_id: str) -> str:
        folder = job_folder(self._root, "", message_id)
        self._claim(folder, "job")  # a prefix level already: written there all the same
        return folder


def _read_marker(data: bytes) -> tuple[str, str | None]:
    """(the marker's role, its fingerprint: None when it has none or is unreadable)."""
    try:
        doc = jsonsafe.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return "unknown", None
    if not isinstance(doc, dict):
        return "unknown", None
    role, first = doc.get("role"), doc.get("fingerprint")
    return (
        role if role in ("job", "prefix") else "unknown",
        first if isinstance(first, str) else None,
    )
