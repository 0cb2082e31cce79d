"""Where the previous attempt's release goes with crash accounting on (``worker.loop.executing``).

With the executor in the worker's process, a crash of the next run would end the process that
is writing the release, so the next job starts only once it is written. With an isolated
executor (a child process: ``ProcessExecutor``), the next run's crash can't reach that write: it
is written beside the run, and the GPU does not wait for it. A store whose write of job ``a``'s
release waits for a gate shows which one happened.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.fakes.memstore import GatedStore
from tests.fakes.scripted import ScriptedExecutor, workflow
from tests.memory.world import World
from worker.exitcodes import ExitCode
from worker.loop import attempts


class IsolatedScripted(ScriptedExecutor):
    isolated = True  # as ProcessExecutor says of itself


def run_two(tmp_path: Path, executor: ScriptedExecutor) -> tuple[World, GatedStore, list[str]]:
    """Jobs ``a`` then ``b``; returns once ``b`` started or 1 s (real) passed, gate closed."""
    store = GatedStore()
    world = World(tmp_path / "work", store=store)
    executor.clock = world.clock
    for job_id in ("a", "b"):
        world.publish({"job_id": job_id, "workflow": workflow(outputs=[{"name": "o.txt"}])})
    codes: list[ExitCode] = []
    thread = world.run_in_thread(
        codes, executor=executor, MAX_JOBS=2, IDLE_EXIT_S=600, JOB_TIMEOUT_S=86_400
    )
    deadline = time.monotonic() + 1.0
    while executor.executed != ["a", "b"] and time.monotonic() < deadline:
        time.sleep(0.01)
    seen = list(executor.executed)
    store.gate.set()
    thread.join(30)
    assert codes == [ExitCode.OK]
    return world, store, seen


@pytest.mark.parametrize("isolated", [True, False], ids=["isolated", "in-process"])
def test_the_next_job_waits_for_the_release_only_when_a_crash_could_lose_it(
    tmp_path: Path, isolated: bool
) -> None:
    executor = IsolatedScripted() if isolated else ScriptedExecutor()
    world, store, seen = run_two(tmp_path, executor)
    # Isolated: b ran while a's release was held. In-process: b waited for it.
    assert seen == (["a", "b"] if isolated else ["a"])
    assert executor.executed == ["a", "b"]
    for job_id in ("a", "b"):
        result = world.result(job_id)
        assert result is not None and result["status"] == "succeeded", result
        folder = f"{world.output_uri}/{job_id}"
        assert attempts.history(store, folder) == attempts.History(next_attempt=2, crashed=())
