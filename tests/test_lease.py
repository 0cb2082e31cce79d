"""The lease helper extends what is held, promptly, and stops at the lease cap."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

from worker.adapters.sources.lease import Leaser


class Recorder:
    """The extension call, recorded (the seam a Pub/Sub modify_ack_deadline sits behind)."""

    def __init__(self) -> None:
        self.calls: list[tuple[list[str], int]] = []
        self.lock = threading.Lock()

    def __call__(self, ack_ids: Sequence[str], seconds: int) -> None:
        with self.lock:
            self.calls.append((sorted(ack_ids), seconds))

    def ids(self) -> list[list[str]]:
        with self.lock:
            return [ids for ids, _ in self.calls]


def test_a_new_message_is_extended_at_once_and_released_ones_are_not() -> None:
    rec = Recorder()
    leaser = Leaser(rec, extension_s=30, max_lease_s=600)
    try:
        leaser.add("a")
        time.sleep(0.2)
        assert rec.calls == [(["a"], 30)]  # right away, not a period later
        leaser.add("b")
        time.sleep(0.2)
        assert rec.ids()[-1] == ["a", "b"]
        leaser.remove("a")
        assert leaser.held() == ["b"]
    finally:
        leaser.stop()


def test_extension_stops_at_the_lease_cap() -> None:
    rec = Recorder()
    leaser = Leaser(rec, extension_s=1.5, max_lease_s=1.2)  # extends every ~0.4-0.5 s
    try:
        leaser.add("runaway")
        time.sleep(2.5)
        assert leaser.held() == []  # dropped: Pub/Sub will redeliver it
        extended = len(rec.calls)
        assert 2 <= extended <= 4
        time.sleep(1.0)
        assert len(rec.calls) == extended  # no more extensions once capped
    finally:
        leaser.stop()


def test_a_failing_extension_does_not_stop_the_leaser() -> None:
    calls: list[int] = []

    def flaky(ack_ids: Sequence[str], seconds: int) -> None:
        calls.append(seconds)
        if len(calls) == 1:
            raise ConnectionError("Pub/Sub hiccup")

    leaser = Leaser(flaky, extension_s=1.5, max_lease_s=60)
    try:
        leaser.add("x")
        time.sleep(1.2)
        assert len(calls) >= 2
    finally:
        leaser.stop()


class Fatal(BaseException):
    """Not an ``Exception``: what the lease loop's own handler does not catch."""


def test_a_dead_lease_thread_is_reported_not_silent() -> None:
    died: list[tuple[str, BaseException | None]] = []
    reported = threading.Event()

    def extend(ack_ids: Sequence[str], seconds: int) -> None:
        raise Fatal("boom")

    def on_death(name: str, error: BaseException | None) -> None:
        died.append((name, error))
        reported.set()

    leaser = Leaser(extend, extension_s=30, max_lease_s=600)
    leaser.watch(on_death)
    leaser.add("a")
    assert reported.wait(5)
    assert died[0][0] == "leaser" and isinstance(died[0][1], Fatal)
    # Watching after the death still hears of it (the runner may start watching late).
    late: list[str] = []
    leaser.watch(lambda name, error: late.append(name))
    assert late == ["leaser"]
