"""``EventPublisher``: events arrive with their bytes and attributes; a publish that can't get
through raises ``Transient`` (the message is then not acked), ``publish_nowait`` never raises."""

from __future__ import annotations

import pytest

from tests.contract.conftest import Events
from worker.errors import Transient


def test_a_published_event_arrives_with_its_data_and_attributes(events: Events) -> None:
    publisher = events.publisher()
    sent = [
        (f'{{"job_id": "e{i}"}}'.encode(), {"job_id": f"e{i}", "status": "succeeded"})
        for i in range(3)
    ]
    ids = [publisher.publish(data, attributes) for data, attributes in sent]
    assert all(isinstance(i, str) and i for i in ids) and len(set(ids)) == 3
    # publish() returned: the service has each one (the worker acks the job only then).
    assert sorted(events.received(3)) == sorted(sent)


def test_progress_is_published_without_waiting(events: Events) -> None:
    publisher = events.publisher()
    publisher.publish_nowait(b'{"value": 1}', {"job_id": "p", "status": "running"})
    publisher.publish(b"{}", {"job_id": "p", "status": "succeeded"})
    got = events.received(2)
    assert (b'{"value": 1}', {"job_id": "p", "status": "running"}) in got


def test_a_publish_that_cannot_get_through_raises_transient(events: Events) -> None:
    broken = events.broken()
    with pytest.raises(Transient):
        broken.publish(b"{}", {"job_id": "x"})
    broken.publish_nowait(b"{}", {"job_id": "x"})  # logged and dropped, never raised
