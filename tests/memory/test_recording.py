"""Jobs are recorded side by side (``worker.loop.finisher``): one job's slow write (a remote GCS
round trip, a large output) does not hold up the next job's result. A store whose write of job
``a``'s ``result.json`` waits for a gate shows it."""

from __future__ import annotations

import time
from pathlib import Path

from tests.fakes.memstore import GatedStore
from tests.fakes.scripted import workflow
from tests.memory.world import World
from worker.exitcodes import ExitCode


def test_a_slow_recording_does_not_hold_up_the_next_jobs(tmp_path: Path) -> None:
    store = GatedStore(held="/a/result.json")
    world = World(tmp_path / "work", store=store)
    for job_id in ("a", "b"):
        world.publish({"job_id": job_id, "workflow": workflow(outputs=[{"name": "o.txt"}])})
    codes: list[ExitCode] = []
    thread = world.run_in_thread(codes, MAX_JOBS=2, IDLE_EXIT_S=600)
    try:
        deadline = time.monotonic() + 10
        while world.result("b") is None:
            assert time.monotonic() < deadline, "b's result waited behind a's write"
            time.sleep(0.02)
        assert world.result("a") is None  # still being written
        assert [e["job_id"] for e in world.events()] == ["b"]
    finally:
        store.gate.set()
    thread.join(30)
    assert codes == [ExitCode.OK]
    assert world.result("a") is not None and world.subscription.unacked() == 0
    assert sorted(e["job_id"] for e in world.events()) == ["a", "b"]
