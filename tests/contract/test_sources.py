"""``JobSource``: what the worker relies on from a subscription, memory and emulator alike."""

from __future__ import annotations

import time

from tests.contract.conftest import ACK_DEADLINE_S, Sources, job


def test_a_message_arrives_with_its_data_attributes_id_and_first_attempt(
    sources: Sources,
) -> None:
    message_id = sources.publish(job("a"), job_id="a", kind="x")
    source = sources.source()
    delivery = source.receive(5)
    assert delivery is not None
    assert delivery.message_id == message_id and delivery.data == job("a")
    assert dict(delivery.attributes) == {"job_id": "a", "kind": "x"}
    assert delivery.delivery_attempt == 1 and not delivery.final_attempt
    assert delivery.published_at is not None and abs(delivery.published_at - time.time()) < 60
    source.ack(delivery)
    assert source.receive(1) is None  # acked: gone for good


def test_nothing_waiting_is_none_after_about_the_timeout(sources: Sources) -> None:
    source = sources.source()
    started = sources.now()
    assert source.receive(1) is None
    assert sources.now() - started < 5


def test_a_held_message_goes_to_no_one_else(sources: Sources) -> None:
    sources.publish(job("held"))
    first, second = sources.source(), sources.source()
    delivery = first.receive(5)
    assert delivery is not None
    assert second.receive(1) is None
    first.ack(delivery)


def test_a_nack_hands_it_back_at_once_with_the_next_attempt(sources: Sources) -> None:
    sources.publish(job("again"))
    source = sources.source()
    first = source.receive(5)
    assert first is not None
    source.nack(first)
    second = source.receive(5)
    assert second is not None and second.message_id == first.message_id
    assert second.delivery_attempt == 2 and second.data == job("again")
    source.ack(second)


def test_the_fifth_delivery_is_final_and_after_it_the_message_comes_no_more(
    sources: Sources,
) -> None:
    sources.publish(job("doomed"))
    source = sources.source()
    attempts = []
    finals = []
    for _ in range(5):
        delivery = source.receive(5)
        assert delivery is not None
        attempts.append(delivery.delivery_attempt)
        finals.append(delivery.final_attempt)
        source.nack(delivery)
    assert attempts == [1, 2, 3, 4, 5]
    assert finals == [False] * 4 + [True]
    # Pub/Sub forwards it to the dead-letter topic (the emulator drops it; the memory
    # subscription keeps it in ``dead_letters``): either way this subscription is done with it.
    assert source.receive(2) is None


def test_close_hands_back_what_it_holds(sources: Sources) -> None:
    sources.publish(job("left"))
    first = sources.source()
    assert first.receive(5) is not None
    first.close()
    second = sources.source()
    delivery = second.receive(5)
    assert delivery is not None and delivery.delivery_attempt == 2
    second.ack(delivery)


def test_the_lease_outlives_the_ack_deadline_while_held(sources: Sources) -> None:
    """The lease helper extends what is held: nobody else gets it past the deadline."""
    sources.publish(job("long"))
    holder, other = sources.source(extension_s=ACK_DEADLINE_S), sources.source()
    delivery = holder.receive(5)
    assert delivery is not None
    sources.sleep(ACK_DEADLINE_S + 3)
    assert other.receive(1) is None
    holder.ack(delivery)
    assert other.receive(1) is None  # an ack after extensions still counts
