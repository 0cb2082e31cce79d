"""The manifest source on its own: shares, deterministic ids, nack semantics, open errors."""

from __future__ import annotations

import threading
import time

import pytest

from tests.cloud import Cloud
from worker.adapters.sources.jsonl import (
    Line,
    ManifestSource,
    line_message_id,
    message_id_prefix,
    share,
)
from worker.adapters.storage.gcs import GcsStore
from worker.errors import ConfigError, ServiceUnavailable
from worker.message.job import Delivery

URI = "gs://bucket/backfills/jobs.jsonl"


def _data(n: int) -> bytes:
    return b"".join(b'{"n": %d}\n' % i for i in range(1, n + 1))


def test_shares_cover_every_line_once_and_are_even() -> None:
    data = _data(30)
    shares = [share(data, i, 3) for i in range(3)]
    numbers = sorted(line.number for s in shares for line in s)
    assert numbers == list(range(1, 31))
    assert [len(s) for s in shares] == [10, 10, 10]
    assert [line.number for line in shares[1][:3]] == [2, 5, 8]


def test_blank_lines_are_skipped_but_keep_their_numbers() -> None:
    lines = share(b'{"a": 1}\r\n\n   \n{"b": 2}', 0, 1)
    assert [(line.number, line.data) for line in lines] == [(1, b'{"a": 1}'), (4, b'{"b": 2}')]


def test_more_tasks_than_lines_leaves_some_shares_empty() -> None:
    source = ManifestSource(URI, share(_data(2), 4, 5))
    assert source.total == 0 and source.receive(0.1) is None


def test_message_ids_are_deterministic_and_distinct_per_manifest() -> None:
    first = ManifestSource(URI, share(_data(3), 0, 1)).receive(0.1)
    again = ManifestSource(URI, share(_data(3), 0, 1)).receive(0.1)
    other = ManifestSource("gs://bucket/other/jobs.jsonl", share(_data(3), 0, 1)).receive(0.1)
    assert first is not None and again is not None and other is not None
    assert first.message_id == again.message_id
    assert first.message_id == line_message_id(message_id_prefix(URI), 1, _data(3).split(b"\n")[0])
    assert first.message_id.startswith(f"{message_id_prefix(URI)}-000001-")
    assert first.message_id.startswith("jobs-") and other.message_id != first.message_id
    assert message_id_prefix("gs://b/we ird+name.v2.jsonl").startswith("we-ird-name-")


def test_ack_counts_progress_and_drains() -> None:
    source = ManifestSource(URI, share(_data(2), 0, 1))
    for _ in range(2):
        delivery = source.receive(0.1)
        assert delivery is not None and delivery.source == "manifest"
        source.ack(delivery)
    assert source.done == 2 and source.receive(0.1) is None


def test_nack_retries_the_line_later_with_a_higher_attempt() -> None:
    source = ManifestSource(URI, share(_data(2), 0, 1))
    first = source.receive(0.1)
    assert first is not None and first.delivery_attempt == 1
    source.nack(first)
    second = source.receive(0.1)
    assert second is not None and second.data == b'{"n": 2}'  # the nacked line went to the back
    source.ack(second)
    retry = source.receive(0.1)
    assert retry is not None and retry.message_id == first.message_id
    assert retry.delivery_attempt == 2


def test_a_line_that_keeps_failing_makes_the_task_exit_non_zero_after_the_rest() -> None:
    source = ManifestSource(URI, share(_data(2), 0, 1), max_attempts=2)
    bad = source.receive(0.1)
    assert bad is not None
    source.nack(bad)
    good = source.receive(0.1)
    assert good is not None
    source.ack(good)
    again = source.receive(0.1)
    assert again is not None
    source.nack(again)
    with pytest.raises(ServiceUnavailable, match=r"line\(s\) 1 failed 2 attempts"):
        source.receive(0.1)


def test_receive_waits_for_in_flight_lines_before_saying_done() -> None:
    # The runner prefetches: "no more work" must not be answered while a line may be nacked.
    source = ManifestSource(URI, share(_data(1), 0, 1))
    held = source.receive(0.1)
    assert held is not None
    got: list[Delivery | None] = []
    reader = threading.Thread(target=lambda: got.append(source.receive(0.05)))
    reader.start()
    time.sleep(0.3)
    assert reader.is_alive()  # still waiting, past its timeout
    source.nack(held)
    reader.join(2)
    assert len(got) == 1 and got[0] is not None and got[0].message_id == held.message_id


def test_close_wakes_a_waiting_receive() -> None:
    source = ManifestSource(URI, [Line(1, b"{}")])
    assert source.receive(0.1) is not None
    got: list[Delivery | None] = []
    reader = threading.Thread(target=lambda: got.append(source.receive(0.05)))
    reader.start()
    source.close()
    reader.join(2)
    assert got == [None]


def test_open_reads_this_tasks_share_from_gcs(cloud: Cloud) -> None:
    cloud.gcs.bucket(cloud.bucket).blob("m/jobs.jsonl").upload_from_string(_data(7))
    settings = cloud.settings(CLOUD_RUN_TASK_INDEX=1, CLOUD_RUN_TASK_COUNT=3)
    store = GcsStore(settings.project, 5)
    source = ManifestSource.open(f"gs://{cloud.bucket}/m/jobs.jsonl", store, settings)
    assert source.total == 2  # lines 2 and 5


def test_open_refuses_a_missing_or_oversized_manifest(cloud: Cloud) -> None:
    cloud.gcs.bucket(cloud.bucket).blob("big.jsonl").upload_from_string(_data(100))
    store = GcsStore("test-project", 5)
    with pytest.raises(ConfigError, match="does not exist"):
        ManifestSource.open(f"gs://{cloud.bucket}/nope.jsonl", store, cloud.settings())
    with pytest.raises(ConfigError, match="over MANIFEST_MAX_BYTES=100"):
        ManifestSource.open(
            f"gs://{cloud.bucket}/big.jsonl", store, cloud.settings(MANIFEST_MAX_BYTES=100)
        )
