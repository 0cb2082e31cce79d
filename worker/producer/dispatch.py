"""The sizing decision of ``dispatch`` and ``submit --execute``: pure, so tests can table it.

Tasks wanted = ``min(max_tasks, ceil(backlog / jobs_per_task))``. Executions that have not finished
hold tasks (running or still pending, including one started a moment ago); only the shortfall is
started, as one new execution, and only while fewer than ``max_executions`` are unfinished and the
daily task budget allows. Run twice on the same state, it starts nothing the second time.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from worker.producer.cloudrun import ExecutionState

BUDGET_WINDOW = timedelta(hours=24)


@dataclass(frozen=True)
class Policy:
    max_tasks: int  # tasks of this job running at once, over all its executions
    jobs_per_task: int  # jobs one task is expected to take before it idles out
    max_executions: int  # unfinished executions at once
    daily_task_budget: int  # tasks that executions created in the last 24 h may total; 0: none


@dataclass(frozen=True)
class Plan:
    backlog: int
    wanted_tasks: int
    running_tasks: int
    running_executions: int
    tasks_last_24h: int
    start_tasks: int  # 0: start nothing
    reason: str
    locked_out: bool = False  # another dispatcher held the lock: nothing was looked at

    def as_fields(self) -> dict[str, Any]:
        return dict(self.__dict__)


def wanted_tasks(backlog: int, policy: Policy) -> int:
    if backlog <= 0:
        return 0
    return min(policy.max_tasks, math.ceil(backlog / policy.jobs_per_task))


def plan(backlog: int, executions: Sequence[ExecutionState], policy: Policy, now: datetime) -> Plan:
    """Decide how many tasks to start now (in one execution)."""
    unfinished = [e for e in executions if not e.done]
    running = sum(e.unfinished_tasks for e in unfinished)
    recent = sum(
        e.task_count
        for e in executions
        if e.create_time is None or e.create_time >= now - BUDGET_WINDOW
    )
    wanted = wanted_tasks(backlog, policy)
    short = wanted - running
    budget_left = policy.daily_task_budget - recent if policy.daily_task_budget else short

    def decided(start: int, reason: str) -> Plan:
        return Plan(backlog, wanted, running, len(unfinished), recent, start, reason)

    if backlog <= 0:
        return decided(0, "no backlog")
    if short <= 0:
        return decided(0, f"enough running: {running} task(s) for {wanted} wanted")
    if len(unfinished) >= policy.max_executions:
        return decided(0, f"{len(unfinished)} executions unfinished (max {policy.max_executions})")
    if budget_left <= 0:
        return decided(0, f"daily task budget spent: {recent} of {policy.daily_task_budget}")
    start = min(short, budget_left)
    capped = " (capped by the daily budget)" if start < short else ""
    return decided(start, f"start {start} task(s): {running} running, {wanted} wanted{capped}")
