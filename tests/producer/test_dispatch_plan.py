"""The sizing decision, as a table: backlog and unfinished executions in, tasks to start out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from worker.producer.cloudrun import ExecutionState
from worker.producer.dispatch import Policy, plan, wanted_tasks

NOW = datetime(2026, 1, 1, 12, tzinfo=UTC)
POLICY = Policy(max_tasks=10, jobs_per_task=20, max_executions=3, daily_task_budget=0)


def running(tasks: int, *, age_h: float = 0.1, total: int | None = None) -> ExecutionState:
    return ExecutionState(
        name=f"e{tasks}",
        task_count=total or tasks,
        unfinished_tasks=tasks,
        create_time=NOW - timedelta(hours=age_h),
        done=False,
    )


def finished(tasks: int, *, age_h: float = 1.0) -> ExecutionState:
    return ExecutionState(
        name=f"f{tasks}",
        task_count=tasks,
        unfinished_tasks=0,
        create_time=NOW - timedelta(hours=age_h),
        done=True,
    )


@pytest.mark.parametrize(
    ("backlog", "wanted"), [(0, 0), (1, 1), (20, 1), (21, 2), (199, 10), (10_000, 10)]
)
def test_wanted_tasks_is_ceil_of_backlog_per_task_capped(backlog: int, wanted: int) -> None:
    assert wanted_tasks(backlog, POLICY) == wanted


@pytest.mark.parametrize(
    ("backlog", "executions", "start", "reason"),
    [
        (0, [], 0, "no backlog"),
        (0, [running(4)], 0, "no backlog"),
        (45, [], 3, "start 3 task(s): 0 running, 3 wanted"),
        (45, [running(2)], 1, "start 1 task(s): 2 running, 3 wanted"),
        (45, [running(3)], 0, "enough running: 3 task(s) for 3 wanted"),
        (45, [running(5)], 0, "enough running"),
        (45, [finished(8)], 3, "start 3"),
        (1000, [running(1, total=6)], 9, "start 9 task(s): 1 running, 10 wanted"),
        (1000, [running(1), running(1), running(1)], 0, "3 executions unfinished (max 3)"),
    ],
)
def test_plan(backlog: int, executions: list[ExecutionState], start: int, reason: str) -> None:
    decided = plan(backlog, executions, POLICY, NOW)
    assert decided.start_tasks == start
    assert reason in decided.reason


def test_running_twice_on_the_same_state_starts_nothing_new() -> None:
    first = plan(100, [], POLICY, NOW)
    assert first.start_tasks == 5
    just_started = ExecutionState("new", 5, 5, NOW, done=False)  # as the listing shows it next
    assert plan(100, [just_started], POLICY, NOW).start_tasks == 0


def test_daily_budget_caps_and_then_stops_starts() -> None:
    pol = Policy(max_tasks=10, jobs_per_task=1, max_executions=10, daily_task_budget=12)
    history = [finished(8, age_h=2), finished(50, age_h=30)]  # the second is outside 24 h
    capped = plan(10, history, pol, NOW)
    assert capped.start_tasks == 4 and "capped by the daily budget" in capped.reason
    assert capped.tasks_last_24h == 8
    spent = plan(10, [*history, finished(4, age_h=0.5)], pol, NOW)
    assert spent.start_tasks == 0 and "daily task budget spent: 12 of 12" in spent.reason
