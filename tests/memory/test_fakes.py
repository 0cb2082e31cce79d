"""The fakes' own promises beyond the contract suite: the clock's jumps, and what only the memory
subscription shows (dead letters, a lapsed lease after the cap)."""

from __future__ import annotations

import threading
import time

from tests.fakes.clock import FakeClock
from tests.fakes.memsource import MemorySource, MemorySubscription


def test_the_clock_jumps_to_each_deadline_in_order_and_never_back() -> None:
    clock = FakeClock()
    woke: list[tuple[str, float]] = []
    start = clock.monotonic()

    def sleeper(name: str, seconds: float) -> None:
        clock.sleep(seconds)
        woke.append((name, clock.monotonic() - start))

    threads = [threading.Thread(target=sleeper, args=(n, s)) for n, s in (("b", 300), ("a", 60))]
    real = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert [name for name, _ in woke] == ["a", "b"]
    assert 60 <= woke[0][1] < 61 and 300 <= woke[1][1] < 301
    assert time.monotonic() - real < 5 and clock.skipped >= 299


def test_the_clock_waits_for_a_thread_still_busy_with_the_time_it_read() -> None:
    clock = FakeClock(busy_s=0.3)
    clock.monotonic()  # this thread read the time and is now "busy"
    done = threading.Event()
    jumped_at: list[float] = []

    def waiter() -> None:
        clock.sleep(100)
        jumped_at.append(time.monotonic())
        done.set()

    real = time.monotonic()
    threading.Thread(target=waiter).start()
    assert done.wait(5)
    assert jumped_at[0] - real >= 0.3  # not before this thread had been silent for busy_s


def test_a_message_nacked_after_its_last_attempt_is_dead_lettered() -> None:
    subscription = MemorySubscription(FakeClock(), max_delivery_attempts=2)
    subscription.publish(b"x")
    source = MemorySource(subscription, max_delivery_attempts=2)
    try:
        for _ in range(2):
            delivery = source.receive(1)
            assert delivery is not None
            source.nack(delivery)
        assert source.receive(1) is None
        assert [m.data for m in subscription.dead_letters] == [b"x"]
    finally:
        source.close()


def test_past_the_lease_cap_the_message_goes_to_another_worker() -> None:
    clock = FakeClock()
    subscription = MemorySubscription(clock, ack_deadline_s=10)
    subscription.publish(b"runaway")
    holder = MemorySource(subscription, extension_s=10, max_lease_s=60)
    other = MemorySource(subscription)
    try:
        first = holder.receive(1)
        assert first is not None
        clock.sleep(50)
        assert other.receive(1) is None  # still extended
        second = other.receive(60)  # the cap (60 s) plus one ack deadline, at most
        assert second is not None and second.delivery_attempt == 2
        holder.ack(first)  # too late: its ack id expired
        assert subscription.unacked() == 1
        other.ack(second)
        assert subscription.unacked() == 0
    finally:
        holder.close()
        other.close()
