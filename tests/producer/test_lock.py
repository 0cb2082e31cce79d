"""The dispatch lock on fake-gcs-server: one decision per slot, and none while a recent one may
still be acting. The clock is injected; the objects and preconditions are real."""

from __future__ import annotations

import json

from tests.cloud import Cloud
from worker.adapters.storage.gcs import GcsStore
from worker.producer.lock import SlotLock


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _lock(cloud: Cloud, clock: Clock) -> SlotLock:
    store = GcsStore("test-project", 5)
    return SlotLock(store, f"gs://{cloud.bucket}/results/_dispatch/comfy", 30.0, clock)


def test_one_winner_per_slot(cloud: Cloud) -> None:
    clock = Clock(3000.0)  # slot 100
    a, b = _lock(cloud, clock), _lock(cloud, clock)
    assert a.acquire() is True
    clock.now = 3029.0  # same slot
    assert b.acquire() is False
    blob = cloud.gcs.bucket(cloud.bucket).get_blob("results/_dispatch/comfy/100.json")
    assert blob is not None and json.loads(blob.download_as_bytes())["created_at"] == 3000.0


def test_the_next_slot_waits_until_the_previous_decision_is_a_slot_old(cloud: Cloud) -> None:
    clock = Clock(3029.0)  # late in slot 100
    assert _lock(cloud, clock).acquire() is True
    clock.now = 3031.0  # slot 101, but only 2 s after the last decision
    assert _lock(cloud, clock).acquire() is False
    clock.now = 3065.0  # slot 102: the slot-101 attempt left an object 34 s old
    assert _lock(cloud, clock).acquire() is True


def test_an_earlier_racer_backs_off_when_the_next_slot_is_taken(cloud: Cloud) -> None:
    late = Clock(3061.0)  # slot 102
    assert _lock(cloud, late).acquire() is True
    early = Clock(3059.9)  # slot 101, arriving after slot 102's object was written
    assert _lock(cloud, early).acquire() is False


def test_a_decision_is_only_acted_on_within_half_a_slot(cloud: Cloud) -> None:
    clock = Clock(6000.0)
    lock = _lock(cloud, clock)
    assert not lock.still_held()
    assert lock.acquire() and lock.still_held()
    clock.now += 16
    assert not lock.still_held()
