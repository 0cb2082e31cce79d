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

    def place(self, prefix: str, job_id: str, message_id: str) -> Placement:
        """Claim the folder of job (``prefix``, ``job_id``), or say why it can't have it and
        where its (failed) result goes instead."""
        folder = job_folder(self._root, prefix, job_id)
        clash, fresh = self._claim_tree(prefix, job_id)
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
        clash, _ = self._claim_tree(prefix, job_id)
        return clash

    def place_refused(self, job_id: str, prefix: str, message_id: str) -> Placement:
        """Where a message refused by the parser records its result (see the module doc)."""
        placed = self.place(prefix, job_id, message_id)
        return Placement(placed.folder, placed.fresh)

    # -- claims -------------------------------------------------------------------------------

    def _claim_tree(self, prefix: str, job_id: str) -> tuple[str | None, bool]:
        """(what clashed, or None; whether the job folder's marker is new)."""
        level = self._root
        for segment in [s for s in prefix.split("/") if s]:
            level = f"{level}/{segment}"
            if level in self._prefixes:
                continue
            found, _ = self._claim(level, "prefix")
            if found != "prefix":
                return f"{echo(level)} is the folder of another job", False
            self._prefixes.add(level)
        folder = job_folder(self._root, prefix, job_id)
        if folder in self._prefixes:
            return "it is a prefix level that holds other jobs' folders", False
        found, created = self._claim(folder, "job")
        if found != "job":
            if found == "prefix":
                self._prefixes.add(folder)
            return "it is a prefix level that holds other jobs' folders", False
        return None, created

    def _claim(self, level: str, role: Role) -> tuple[str, bool]:
        """(the level's role, whether this call set it)."""
        uri = f"{level}/{MARKER}"
        body = jsonsafe.dumps(
            {"role": role, "claimed_at": datetime.now(UTC).isoformat(), "nonce": uuid.uuid4().hex}
        )
        for _ in range(_CLAIM_TRIES):
            if self._store.put_bytes_once(uri, body, "application/json") is not None:
                return role, True
            data = self._store.get_bytes(uri, 4096)
            if data is not None:
                return _role_of(data), False
        return "unknown", False

    def _fallback(self, message_id: str) -> str:
        folder = job_folder(self._root, "", message_id)
        self._claim(folder, "job")  # a prefix level already: written there all the same
        return folder


def _role_of(data: bytes) -> str:
    try:
        doc = jsonsafe.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return "unknown"
    role = doc.get("role") if isinstance(doc, dict) else None
    return role if role in ("job", "prefix") else "unknown"
