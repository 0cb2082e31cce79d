"""The lease helper extends what is held before the shortest deadline lapses, in one call for
all, never what is acked within its first moments, and stops at the lease cap.

On a ``FakeClock``: the first extension's delay, the periods (a third of the extension) and the
cap pass in virtual time.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

from tests.fakes.clock import FakeClock
from worker.adapters.sources.lease import FIRST_EXTENSION_S, Leaser


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


def test_a_new_message_is_first_extended_after_a_moment_with_all_held() -> None:
    rec, clock = Recorder(), FakeClock()
    leaser = Leaser(rec, extension_s=30, max_lease_s=600, clock=clock)
    try:
        leaser.add("a")
        clock.sleep(FIRST_EXTENSION_S / 2)
        assert rec.calls == []  # not at once: the shortest ack deadline (10 s) leaves room
        leaser.add("b")
        clock.sleep(FIRST_EXTENSION_S / 2 + 0.2)
        assert rec.calls == [(["a", "b"], 30)]  # a's first, b's early: one call for both
        leaser.remove("a")
        assert leaser.held() == ["b"]
        clock.sleep(12)  # a period is a third of the extension, jittered: 8-10 s
        assert rec.ids() == [["a", "b"], ["b"]]
    finally:
        leaser.stop()


def test_a_message_acked_before_its_first_extension_costs_no_request() -> None:
    rec, clock = Recorder(), FakeClock()
    leaser = Leaser(rec, extension_s=60, max_lease_s=600, clock=clock)
    try:
        for n in range(5):  # short jobs, one after another
            leaser.add(f"short-{n}")
            clock.sleep(FIRST_EXTENSION_S * 0.6)
            leaser.remove(f"short-{n}")
        leaser.add("long")
        clock.sleep(FIRST_EXTENSION_S + 0.5)
        assert rec.calls == [(["long"], 60)]
    finally:
        leaser.stop()


def test_a_short_extension_is_first_extended_within_a_third_of_it() -> None:
    rec, clock = Recorder(), FakeClock()
    leaser = Leaser(rec, extension_s=3, max_lease_s=600, clock=clock)
    try:
        leaser.add("a")
        clock.sleep(1.2)
        assert rec.ids()[:1] == [["a"]]
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
