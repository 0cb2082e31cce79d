"""Everything between receiving a message and handing it to the executor.

Parse it, check whether an earlier attempt already finished it (``result.json`` exists), and stage
its inputs. The runner does this for the next message while the current one executes, so the GPU
never waits on it. A message that can't or needn't run comes back with ``early`` or ``existing``
set and goes straight to settling.
"""

from __future__ import annotations

import shutil
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from worker.config import Settings
from worker.errors import WorkerBroken
from worker.inputs import stage
from worker.job import Delivery, Job
from worker.parse import Parser, Refused
from worker.result import RESULT_NAME, JobContext, job_folder
from worker.storage.base import AccessDenied, ObjectStore

MAX_RESULT_BYTES = 4 * 1024 * 1024


@dataclass
class Prepared:
    delivery: Delivery
    ctx: JobContext
    job: Job | None = None
    workdir: Path | None = None
    early: BaseException | None = None  # the job ended before execution (refused, bad input)
    existing: bytes | None = None  # result.json of an earlier attempt: the job is done
    received_at: float = field(default_factory=time.monotonic)
    inputs_s: float = 0.0

    @property
    def runnable(self) -> bool:
        return self.job is not None and self.early is None and self.existing is None

    @property
    def input_dir(self) -> Path:
        assert self.workdir is not None
        return self.workdir / "inputs"

    @property
    def output_dir(self) -> Path:
        assert self.workdir is not None
        return self.workdir / "outputs"

    def cleanup(self) -> None:
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)


def existing_result(store: ObjectStore, ctx: JobContext) -> bytes | None:
    """``result.json`` of an earlier attempt of this job, if any: then the job is done."""
    try:
        return store.get_bytes(f"{ctx.folder}/{RESULT_NAME}", MAX_RESULT_BYTES)
    except AccessDenied as exc:
        raise WorkerBroken(
            f"{exc}: grant the worker's service account access to "
            "the output bucket (roles/storage.objectUser)"
        ) from exc


def prepare(delivery: Delivery, parser: Parser, store: ObjectStore, settings: Settings) -> Prepared:
    received = time.monotonic()
    assert settings.output_uri is not None
    try:
        job = parser.parse(delivery)
    except Refused as refused:
        ctx = JobContext(
            refused.job_id,
            delivery.message_id,
            delivery.delivery_attempt,
            job_folder(settings.output_uri, refused.prefix, refused.job_id),
        )
        return Prepared(delivery, ctx, early=refused.error, received_at=received)
    ctx = JobContext(
        job.job_id,
        delivery.message_id,
        delivery.delivery_attempt,
        job_folder(settings.output_uri, job.output_prefix, job.job_id),
        form=job.form,
        metadata=job.metadata,
        pipeline=job.pipeline,
        params=job.params,
    )
    prepared = Prepared(delivery, ctx, job=job, received_at=received)
    try:
        prepared.existing = existing_result(store, ctx)
        if prepared.existing is None:
            prepared.workdir = settings.work_dir / f"{job.job_id}.{uuid.uuid4().hex[:8]}"
            prepared.input_dir.mkdir(parents=True)
            prepared.output_dir.mkdir()
            stage(job.inputs, prepared.input_dir, store, settings.limits)
    except Exception as exc:  # classified by worker.settle.decide
        prepared.early = exc
    prepared.inputs_s = time.monotonic() - received
    if prepared.early is not None:
        prepared.cleanup()
    return prepared
