"""The local load test (bench/dispatch_load.py): the real dispatcher and run_v2/REST clients
against the Cloud Run API stand-in scale executions up to the maximum under a backlog, and the
tasks go back to zero once it is gone."""

from __future__ import annotations

from bench.dispatch_load import simulate
from worker.producer.dispatch import Policy


def test_executions_scale_up_to_the_maximum_and_back_to_zero() -> None:
    ticks = simulate(30, Policy(4, 20, 5, 0), arrive=120, arrive_ticks=6)
    held = [t.running + t.started for t in ticks]
    assert held[0] == 2, "a small backlog starts a small execution"
    assert max(held) == 4, "never past DISPATCH_MAX_TASKS"
    assert held.index(4) > 0, "grown in steps as the backlog grew"
    assert sum(t.started for t in ticks) >= 4
    assert sum(t.finished_jobs for t in ticks) == 30 + 5 * 120, "every job ran"
    last = ticks[-1]
    assert (last.backlog, last.running, last.started) == (0, 0, 0)
    assert any(t.exited for t in ticks)


def test_the_maximum_holds_under_a_large_backlog() -> None:
    ticks = simulate(5000, Policy(3, 10, 5, 0), job_s=30.0, max_ticks=8)
    assert max(t.running + t.started for t in ticks) == 3
    assert all(t.started == 0 for t in ticks[1:]), "started once, then only kept up"
