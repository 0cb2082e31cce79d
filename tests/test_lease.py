"""The lease helper extends what is held, promptly, and stops at the lease cap.

On a ``FakeClock``: its periods (a third of the extension) and the cap pass in virtual time.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

from tests.fakes.clock import FakeClock
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
    rec, clock = Recorder(), FakeClock()
    leaser = Leaser(rec, extension_s=30, max_lease_s=600, clock=clock)
    try:
        leaser.add("a")
        clock.sleep(0.2)
        assert rec.calls == [(["a"], 30)]  # right away, not a period later
        leaser.add("b")
        clock.sleep(0.2)
        assert rec.ids()[-1] == ["a", "b"]
        leaser.remove("a")
        assert leaser.held() == ["b"]
    finally:
        leaser.stop()


def test_extension_stops_at_the_lease_cap() -> None:
    rec, clock = Recorder(), FakeClock()
    leaser = Leaser(rec, extension_s=150, max_lease_s=120, clock=clock)  # extends every 40-50 s
    try:
        leaser.add("runaway")
        clock.sleep(250)
        assert leaser.held() == []  # dropped: Pub/Sub will redeliver it
        extended = len(rec.calls)
        assert 2 <= extended <= 4
        clock.sleep(100)
        assert len(rec.calls) == extended  # no more extensions once capped
    finally:
        leaser.stop()


def test_a_failing_extension_does_not_stop_the_leaser() -> None:
    calls: list[int] = []

    def flaky(ack_ids: Sequence[str], seconds: int) -> None:
        calls.append(seconds)
        if len(calls) == 1:
            raise ConnectionError("Pub/Sub hiccup")

    clock = FakeClock()
    leaser = Leaser(flaky, extension_s=150, max_lease_s=6000, clock=clock)
    try:
        leaser.add("x")
        clock.sleep(120)
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
