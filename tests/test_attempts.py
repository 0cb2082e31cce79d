"""Attempt records and crash accounting (``worker.loop.attempts``) over the in-memory store."""

from __future__ import annotations

from tests.fakes.memstore import MemoryStore
from worker.config import Identity
from worker.errors import ErrorType
from worker.loop import attempts

A, B = "gs://bkt/out/a", "gs://bkt/out/b"


def start(
    markers: attempts.Markers, folder: str, n: int, after: tuple[str, int] | None = None
) -> int:
    return markers.start(folder, n, job_id="a", message_id="m", delivery_attempt=n, after=after)


def test_only_attempts_that_started_and_were_not_released_count_as_crashed() -> None:
    store = MemoryStore()
    markers = attempts.Markers(store, Identity(execution="exec-1", task_index=3))
    assert attempts.history(store, A) == attempts.History(1, ())
    start(markers, A, 1)  # died with its process
    start(markers, A, 2)
    markers.release(A, 2, "interrupted")  # handed back on purpose (SIGTERM)
    start(markers, A, 3)  # died too
    history = attempts.history(store, A)
    assert history == attempts.History(next_attempt=4, crashed=(1, 3))
    error = attempts.crashed_error(store, A, history.crashed)
    assert error.error_type is ErrorType.WORKER_CRASHED
    assert "attempt 1 (delivery 1" in error.message and "attempt 3 (delivery 3" in error.message
    assert "execution exec-1" in error.message and "task_index 3" in error.message


def test_a_record_written_behind_a_run_that_never_ended_is_not_a_crash() -> None:
    # B's record was written while A ran ("after" A's attempt 1); the process died during A.
    store = MemoryStore()
    markers = attempts.Markers(store, Identity())
    start(markers, A, 1)
    start(markers, B, 1, after=(A, 1))
    assert attempts.history(store, B).crashed == ()  # B never started
    assert attempts.history(store, A).crashed == (1,)  # A did
    # Had A ended (released) before the death, B had started: then B is the one that crashed.
    markers.release(A, 1, "succeeded")
    assert attempts.history(store, B).crashed == (1,)


def test_a_taken_attempt_number_moves_to_the_next_free_one() -> None:
    store = MemoryStore()
    markers = attempts.Markers(store, Identity())
    assert start(markers, A, 1) == 1
    assert start(markers, A, 1) == 2  # a concurrent attempt had taken 1
