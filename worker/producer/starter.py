"""Apply a sizing decision: list executions, plan, start the shortfall (``dispatch``,
``submit --execute``)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from worker.adapters.storage.base import ObjectStore
from worker.config import ProducerSettings, Settings
from worker.obs import logs
from worker.producer.cloudrun import CloudRunJob
from worker.producer.dispatch import Plan, Policy, plan, wanted_tasks
from worker.producer.lock import SlotLock

log = logging.getLogger(__name__)


def policy(producer: ProducerSettings) -> Policy:
    return Policy(
        max_tasks=producer.dispatch_max_tasks,
        jobs_per_task=producer.dispatch_jobs_per_task,
        max_executions=producer.dispatch_max_executions,
        daily_task_budget=producer.dispatch_daily_task_budget,
    )


def lock_for(settings: Settings, store: ObjectStore) -> SlotLock | None:
    """The dispatch lock of ``RUN_JOB``: under DISPATCH_LOCK_URI, else <OUTPUT_URI>/_dispatch."""
    producer = settings.producer
    base = settings.dispatch_lock_uri
    if base is None or producer.run_job is None:
        logs.event(
            log,
            "dispatch.unlocked",
            logging.WARNING,
            why="set DISPATCH_LOCK_URI or OUTPUT_URI so concurrent dispatchers can't "
            "both start executions",
        )
        return None
    return SlotLock(
        store, f"{base}/{producer.run_job.rsplit('/', 1)[-1]}", producer.dispatch_lock_s
    )


def _skipped(backlog: int, pol: Policy, reason: str, locked_out: bool = False) -> Plan:
    return Plan(backlog, wanted_tasks(backlog, pol), 0, 0, 0, 0, reason, locked_out)


def dispatch_once(
    backlog: int,
    job: CloudRunJob,
    pol: Policy,
    lock: SlotLock | None,
    *,
    dry_run: bool = False,
    now: datetime | None = None,
) -> Plan:
    """One decision: start at most one execution so running tasks track the backlog."""
    if lock is not None and not dry_run and not lock.acquire():
        return _skipped(backlog, pol, "another dispatcher is deciding (lock held)", True)
    decided = plan(backlog, job.executions(), pol, now or datetime.now(UTC))
    logs.event(log, "dispatch.plan", dry_run=dry_run, **decided.as_fields())
    if decided.start_tasks <= 0 or dry_run:
        return decided
    if lock is not None and not lock.still_held():
        # Too slow: another dispatcher may already be deciding on fresher numbers.
        return _skipped(backlog, pol, "the decision took longer than half a lock slot; not acted")
    job.start(decided.start_tasks)
    return decided
