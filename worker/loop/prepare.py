"""Everything between receiving a message and handing it to the executor (the prefetch thread).

Parse it; place it in the namespace (claim its folder); if the folder is not new, wait while
this process still holds another copy of the job, ask the ledger whether an earlier attempt
finished it, and count earlier attempts that crashed; then stage its inputs and fetch the models
it brings (``worker.models.fetch``, pinned in the cache until the message is settled). The
runner does this for the next message while the current one executes, so the GPU never waits on
it. A message that can't or needn't run comes back with ``early`` or ``existing`` set.

Whatever a message holds, ``prepare`` returns: an exception nobody classified becomes the job's
own failure (``invalid_job`` before staging, ``input_error`` while staging, ``oom`` for
``MemoryError``), logged with its traceback. Classified faults keep their class: ``Transient``
(GCS flaking) is handed back, ``WorkerBroken`` (the bucket denies access) stops the worker.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from worker.adapters.storage.base import AccessDenied, ObjectStore
from worker.config import Settings
from worker.errors import ErrorType, JobFailed, Stopped, WorkerBroken, WorkerError
from worker.loop import attempts
from worker.loop.ledger import Existing, Ledger
from worker.loop.overlap import BusyClock
from worker.message.bounded import safe_str
from worker.message.inputs import stage
from worker.message.job import Delivery, Job
from worker.message.namespace import Namespace, Placement
from worker.message.parse import Parser, Refused
from worker.models.fetch import JobModels, ModelFetcher
from worker.obs import logs
from worker.record.result import JobContext, job_folder

log = logging.getLogger(__name__)


@dataclass(eq=False)
class Prepared:
    """One message on its way through the worker. The control loop alone sets ``settled``."""

    delivery: Delivery
    ctx: JobContext
    job: Job | None = None
    workdir: Path | None = None
    early: BaseException | None = None  # the job ended before execution (refused, bad input)
    existing: Existing | None = None  # an earlier attempt's result: the job is done
    received_at: float = field(default_factory=time.monotonic)
    inputs_s: float = 0.0
    attempt: int = 1  # the number this job's next execution attempt records
    settled: bool = False
    rounds: int = 0  # recording rounds tried (an upload retried from the kept outputs)
    models: JobModels | None = None  # the models it brings, pinned in the cache
    models_s: float = 0.0  # fetching them (not part of inputs_s)
    models_overlap_s: float = 0.0  # of which the executor was running another job

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
        if self.models is not None:  # its models may be evicted again
            models, self.models = self.models, None
            models.release()


class Preparer:
    def __init__(
        self,
        parser: Parser,
        store: ObjectStore,
        settings: Settings,
        namespace: Namespace,
        ledger: Ledger,
        models: ModelFetcher | None = None,
        busy: BusyClock | None = None,
    ) -> None:
        self._parser = parser
        self._store = store
        self._settings = settings
        self._namespace = namespace
        self._ledger = ledger
        self._models = models
        self._busy = busy or BusyClock()

    def prepare(self, delivery: Delivery, stop: threading.Event) -> Prepared:
        received = time.monotonic()
        try:
            job = self._parser.parse(delivery)
        except Refused as refused:
            prepared = self._refused(delivery, refused)
        else:
            prepared = self._accepted(delivery, job, stop)
        prepared.received_at = received
        prepared.inputs_s = time.monotonic() - received - prepared.models_s
        if prepared.early is not None or prepared.existing is not None:
            prepared.cleanup()
        return prepared

    def _refused(self, delivery: Delivery, refused: Refused) -> Prepared:
        ctx = self._context(delivery, refused.job_id, "")
        prepared = Prepared(delivery, ctx, early=refused.error)
        try:
            placed = self._namespace.place_refused(
                refused.job_id, refused.prefix, delivery.message_id, refused.fingerprint
            )
            prepared.ctx = self._context(delivery, refused.job_id, placed.folder)
            if not placed.fresh:  # a redelivery of a refused message: announce, don't rewrite
                prepared.existing = self._ledger.lookup(prepared.ctx)
        except Exception as exc:
            self._bookkeeping_failed(prepared, exc)
        return prepared

    def _accepted(self, delivery: Delivery, job: Job, stop: threading.Event) -> Prepared:
        prepared = Prepared(delivery, self._context(delivery, job.job_id, "", job), job=job)
        try:
            placed = self._namespace.place(
                job.output_prefix, job.job_id, delivery.message_id, job.fingerprint
            )
            if placed.refusal is not None:
                prepared.ctx = self._context(delivery, delivery.message_id, placed.folder, job)
                prepared.early = placed.refusal
                return prepared
            prepared.ctx = self._context(delivery, job.job_id, placed.folder, job)
            if not placed.fresh and not self._look_back(prepared, placed, stop):
                return prepared
        except Exception as exc:
            self._bookkeeping_failed(prepared, exc)
            return prepared
        self._stage(prepared, job, stop)
        return prepared

    def _look_back(self, prepared: Prepared, placed: Placement, stop: threading.Event) -> bool:
        """What earlier attempts left in a folder that existed; False when the job ends here."""
        if not self._ledger.wait_free(placed.folder, stop):
            prepared.early = Stopped("stop requested before the job ran")
            return False
        prepared.existing = self._ledger.lookup(prepared.ctx)
        if prepared.existing is not None:
            return False
        history = attempts.history(self._store, placed.folder)
        prepared.attempt = history.next_attempt
        if history.cancelled:  # cancelled before it ran: it never runs
            prepared.early = attempts.cancelled_error(placed.folder)
            return False
        limit = self._settings.max_crashed_attempts
        if limit and len(history.crashed) >= limit:
            prepared.early = attempts.crashed_error(self._store, placed.folder, history.crashed)
            return False
        return True

    def _stage(self, prepared: Prepared, job: Job, stop: threading.Event) -> None:
        try:
            name = f"{job.job_id}.{uuid.uuid4().hex[:8]}"
            prepared.workdir = self._settings.work_dir / "jobs" / name
            prepared.input_dir.mkdir(parents=True)
            prepared.output_dir.mkdir()
            stage(job.inputs, prepared.input_dir, self._store, self._settings.limits)
            if job.models:
                self._fetch_models(prepared, job, stop)
        except WorkerError as exc:
            prepared.early = exc
        except MemoryError:
            prepared.early = JobFailed(
                ErrorType.OOM, "the worker ran out of host memory staging this job's inputs"
            )
        except Exception as exc:
            _log_unexpected("staging", exc, prepared.delivery)
            prepared.early = JobFailed(
                ErrorType.INPUT_ERROR,
                f"staging the inputs failed ({type(exc).__name__}: {safe_str(exc, 300)})",
            )

    def _fetch_models(self, prepared: Prepared, job: Job, stop: threading.Event) -> None:
        if self._models is None:
            raise JobFailed(ErrorType.MODEL_ERROR, "this worker does not fetch job models")
        started = time.monotonic()
        try:
            prepared.models = self._models.fetch(job.models, stop)
        except (WorkerError, MemoryError):
            raise
        except Exception as exc:  # a bug meeting this job's models: still its own failure
            _log_unexpected("models", exc, prepared.delivery)
            raise JobFailed(
                ErrorType.MODEL_ERROR,
                f"fetching the job's models failed unexpectedly ({type(exc).__name__})",
            ) from None
        finally:
            ended = time.monotonic()
            prepared.models_s = ended - started
            prepared.models_overlap_s = self._busy.overlap(started, ended)

    def _context(
        self, delivery: Delivery, job_id: str, folder: str, job: Job | None = None
    ) -> JobContext:
        return JobContext(
            job_id,
            delivery.message_id,
            delivery.delivery_attempt,
            folder,
            form=job.form if job else None,
            metadata=job.metadata if job else {},
            pipeline=job.pipeline if job else None,
            params=job.params if job else None,
        )

    def _bookkeeping_failed(self, prepared: Prepared, exc: Exception) -> None:
        """A fault met while placing a job or reading what its earlier attempts left."""
        if isinstance(exc, WorkerError):
            prepared.early = exc
            return
        if isinstance(exc, AccessDenied):
            prepared.early = WorkerBroken(
                f"{exc}: grant the worker's service account access to the output bucket "
                "(roles/storage.objectUser)"
            )
            return
        _log_unexpected("placing", exc, prepared.delivery)
        prepared.early = JobFailed(
            ErrorType.INVALID_JOB,
            f"the job could not be placed under the output location ({type(exc).__name__}: "
            f"{safe_str(exc, 300)})",
        )
        if not prepared.ctx.folder:  # recorded where refused messages go
            assert self._settings.output_uri is not None
            mid = prepared.delivery.message_id
            folder = job_folder(self._settings.output_uri, "", mid)
            prepared.ctx = self._context(prepared.delivery, mid, folder, prepared.job)


def _log_unexpected(stage: str, exc: Exception, delivery: Delivery) -> None:
    logs.event(
        log,
        f"prepare.unexpected ({stage})",
        logging.ERROR,
        exc_info=True,
        message_id=delivery.message_id,
        error=f"{type(exc).__name__}: {safe_str(exc, 500)}",
    )
