"""The plan's Test 7, locally: a backlog through the real dispatcher and the Cloud Run API stand-in.

    .venv/bin/python -m bench.dispatch_load [--jobs 30 --arrive 120 --arrive-ticks 6]
        [--max-tasks 4 --jobs-per-task 20 --job-s 6 --boot-s 60 --idle-exit-s 120]

Each tick is one scheduled ``dispatch`` run (Cloud Scheduler's 2 minutes). The dispatcher is the
project's own code end to end: ``MonitoringBacklog`` reads the backlog with a real REST call and
``CloudRunJob`` lists and starts executions with the real ``google.cloud.run_v2`` client, both
against ``tests/producer/fake_cloudrun.py``. Between ticks a small model of the tasks plays
Cloud Run: each running task boots (``--boot-s``), then takes one job per ``--job-s`` from the
backlog, and exits when it has been idle ``--idle-exit-s`` or its ``--task-s`` budget ends; an
execution completes when all its tasks have. The run shows executions scaling up to
``--max-tasks`` while the backlog lasts and back to zero after, and, per tick, what each step
would put on the metrics (``infra/metrics.tf`` and Google's own).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from tests.producer.fake_cloudrun import FakeCloudRun, serve
from worker.producer.backlog import MonitoringBacklog
from worker.producer.cloudrun import CloudRunJob
from worker.producer.dispatch import Policy
from worker.producer.starter import dispatch_once

JOB = "projects/load-test/locations/europe-west4/jobs/comfy-worker"
SUBSCRIPTION = "projects/load-test/subscriptions/comfy-jobs-worker"


@dataclass
class Task:
    execution: dict[str, Any]
    age_s: float = 0.0
    idle_s: float = 0.0
    done: bool = False


@dataclass
class Tick:
    minute: float
    backlog: int  # what the dispatcher read
    running: int  # tasks running when it decided
    started: int  # tasks it started
    finished_jobs: int  # jobs the tasks finished during the tick after it
    exited: int  # tasks that exited during that tick
    reason: str


@dataclass
class Model:
    """Tasks of the executions the dispatcher started, taking jobs from the backlog."""

    fake: FakeCloudRun
    backlog: int
    job_s: float
    boot_s: float
    idle_exit_s: float
    task_s: float
    tasks: list[Task] = field(default_factory=list)

    def adopt_new_executions(self) -> None:
        known = {id(t.execution) for t in self.tasks}
        for execution in self.fake.executions:
            if id(execution) not in known:
                self.tasks += [Task(execution) for _ in range(int(execution["taskCount"]))]

    def running(self) -> int:
        return sum(not t.done for t in self.tasks)

    def advance(self, seconds: float) -> tuple[int, int]:
        """Let ``seconds`` pass; return (jobs finished, tasks exited)."""
        finished = exited = 0
        for task in (t for t in self.tasks if not t.done):
            busy_from = max(0.0, self.boot_s - task.age_s)  # still booting for this long
            room = max(0.0, min(seconds, self.task_s - task.age_s) - busy_from)
            took = min(self.backlog, int(room // self.job_s))
            self.backlog -= took
            finished += took
            task.idle_s = 0.0 if took else task.idle_s + room
            task.age_s += seconds
            if task.idle_s >= self.idle_exit_s or task.age_s >= self.task_s:
                task.done = True
                exited += 1
                task.execution["succeededCount"] = task.execution.get("succeededCount", 0) + 1
                if task.execution["succeededCount"] >= task.execution["taskCount"]:
                    task.execution["completionTime"] = datetime.now(UTC).isoformat()
        return finished, exited


def simulate(
    jobs: int,
    policy: Policy,
    *,
    arrive: int = 0,
    arrive_ticks: int = 0,
    job_s: float = 6.0,
    boot_s: float = 60.0,
    idle_exit_s: float = 120.0,
    task_s: float = 3600.0,
    tick_s: float = 120.0,
    max_ticks: int = 60,
) -> list[Tick]:
    ticks: list[Tick] = []
    with serve() as fake:
        fake.page_size = 50
        model = Model(fake, jobs, job_s, boot_s, idle_exit_s, task_s)
        job = CloudRunJob(JOB, fake.url)
        monitoring = MonitoringBacklog(SUBSCRIPTION, fake.url)
        quiet = 0
        for n in range(max_ticks):
            if n < arrive_ticks:
                model.backlog += arrive if n else 0
            # Pub/Sub's num_undelivered_messages counts the jobs tasks hold, too.
            fake.backlog_points = [model.backlog + model.running()]
            plan = dispatch_once(monitoring.undelivered(), job, policy, None)
            model.adopt_new_executions()
            finished, exited = model.advance(tick_s)
            ticks.append(
                Tick(
                    n * tick_s / 60,
                    plan.backlog,
                    plan.running_tasks,
                    plan.start_tasks,
                    finished,
                    exited,
                    plan.reason,
                )
            )
            quiet = quiet + 1 if plan.backlog == 0 and plan.running_tasks == 0 else 0
            if quiet >= 2:  # the dispatcher has seen nothing to do, twice
                break
    return ticks


# What each step would write, and the metric that reads it (infra/metrics.tf, Google's own).
EMITS = {
    "dispatch": "dispatch.plan -> comfy_dispatch_started_tasks; "
    "Cloud Run: job/running_task_attempts",
    "backlog": "Pub/Sub: subscription/num_undelivered_messages, oldest_unacked_message_age",
    "task boots": "worker.ready -> comfy_boot_seconds",
    "jobs": "job.started -> comfy_queue_wait_seconds; job.succeeded -> comfy_jobs, "
    "comfy_execution_seconds, comfy_gpu_seconds, comfy_cost_usd, ...",
    "task exits": "worker.exit -> comfy_unattributed_usd",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=30, help="backlog at the start")
    parser.add_argument("--arrive", type=int, default=120, help="jobs published each tick...")
    parser.add_argument("--arrive-ticks", type=int, default=6, help="...for this many ticks")
    parser.add_argument("--max-tasks", type=int, default=4)
    parser.add_argument("--jobs-per-task", type=int, default=20)
    parser.add_argument("--job-s", type=float, default=6.0)
    parser.add_argument("--boot-s", type=float, default=60.0)
    parser.add_argument("--idle-exit-s", type=float, default=120.0)
    args = parser.parse_args()
    policy = Policy(args.max_tasks, args.jobs_per_task, max_executions=5, daily_task_budget=0)
    ticks = simulate(
        args.jobs,
        policy,
        arrive=args.arrive,
        arrive_ticks=args.arrive_ticks,
        job_s=args.job_s,
        boot_s=args.boot_s,
        idle_exit_s=args.idle_exit_s,
    )
    print(f"{'min':>5} {'backlog':>8} {'running':>8} {'started':>8} {'jobs':>6} {'exited':>7}  "
          "decision")  # fmt: skip
    for t in ticks:
        print(
            f"{t.minute:5.0f} {t.backlog:8d} {t.running:8d} {t.started:8d} {t.finished_jobs:6d} "
            f"{t.exited:7d}  {t.reason}"
        )
    peak = max(t.running + t.started for t in ticks)
    print(f"\npeak tasks {peak} (max {args.max_tasks}); last tick: {ticks[-1].running} running")
    print("\nmetrics each step emits:")
    for step, emitted in EMITS.items():
        print(f"  {step:<11} {emitted}")


if __name__ == "__main__":
    main()
