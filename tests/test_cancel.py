"""Cancellation and job status in the job worker (emulators, scripted executor).

Cancel before the job starts (it never runs), while it runs (interrupted within CANCEL_CHECK_S),
behind a running job, and after it ended (unchanged); ``status`` reading each state from the
folder's markers; job references (the ``~`` form) over generated prefixes and ids.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.cloud import Cloud
from tests.fakes.memstore import MemoryStore
from tests.fakes.scripted import workflow
from tests.helpers import run_worker
from tests.producer.cli import worker_cli
from worker.adapters.storage.gcs import GcsStore
from worker.exitcodes import ExitCode
from worker.message.jobref import BadReference, JobRef
from worker.record import cancel, jobstate

FAST = {"CANCEL_CHECK_S": "0.5", "IDLE_EXIT_S": "2"}


def _store() -> GcsStore:
    return GcsStore("test-project", 5)


def _wait_state(cloud: Cloud, job_id: str, want: str, timeout_s: float = 20) -> jobstate.JobState:
    folder = JobRef(job_id).folder(cloud.output_uri)
    deadline = time.monotonic() + timeout_s
    while True:
        state = jobstate.read(_store(), folder)
        done = state.state == want and (want != "cancelled" or state.finished)
        if done or time.monotonic() > deadline:
            return state
        time.sleep(0.1)


def _runs(record: Path) -> list[str]:
    return record.read_text().split() if record.exists() else []


def test_cancel_before_start_never_runs_and_ends_cancelled_with_one_event(
    cloud: Cloud, tmp_path: Path
) -> None:
    record = tmp_path / "runs.txt"
    cancelled = worker_cli(cloud, "cancel", "early")
    assert cancelled.returncode == 0, cancelled.stderr
    assert "cancelled (marker written)" in cancelled.stdout
    again = worker_cli(cloud, "cancel", "early")
    assert again.returncode == 0 and "already" in again.stdout
    status = worker_cli(cloud, "status", "early")
    assert status.returncode == ExitCode.JOBS_FAILED and "cancelled" in status.stdout
    cloud.publish({"job_id": "early", "workflow": workflow(record=str(record))})
    cloud.publish({"job_id": "other", "workflow": workflow(record=str(record))})
    assert run_worker(cloud, **FAST) == ExitCode.OK
    result = cloud.result("early")
    assert result is not None and result["status"] == "cancelled"
    assert result["error"]["type"] == "cancelled" and "never ran" in result["error"]["message"]
    assert _runs(record) == ["other"]
    events = cloud.events(2)
    assert sorted((e["job_id"], e["_attributes"]["status"]) for e in events) == [
        ("early", "cancelled"),
        ("other", "succeeded"),
    ]
    assert cloud.events(1, timeout_s=2) == []
    assert cloud.backlog() == 0
    final = worker_cli(cloud, "status", "early", "--json")
    assert final.returncode == ExitCode.JOBS_FAILED and '"status": "cancelled"' in final.stdout


def test_cancel_while_running_interrupts_within_the_check_interval(
    cloud: Cloud, tmp_path: Path
) -> None:
    record = tmp_path / "runs.txt"
    cloud.publish({"job_id": "long", "workflow": workflow(sleep_s=60, record=str(record))})
    worker = cloud.spawn_worker(tmp_path / "worker.log", **FAST)
    try:
        running = _wait_state(cloud, "long", "running")
        assert running.state == "running", running
        assert running.attempt["attempt"] == 1 and running.attempt["worker"]["pid"] > 0
        status = worker_cli(cloud, "status", "long")
        assert status.returncode == 3 and "long running: attempt 1 since" in status.stdout
        asked = time.monotonic()
        outcome = cancel.request(_store(), cloud.output_uri, JobRef("long"), by="test")
        assert outcome.written and outcome.state.state == "cancelled"
        ended = _wait_state(cloud, "long", "cancelled", timeout_s=15)
        assert ended.result is not None, ended
        took = time.monotonic() - asked
    finally:
        code = worker.wait(60)
    assert code == ExitCode.OK
    assert took < 0.5 + 3.0, f"interrupted {took:.1f} s after the cancel"
    assert ended.result["error"]["type"] == "cancelled"
    assert "interrupted" in ended.result["error"]["message"]
    assert ended.result["timings"]["execution_s"] < 10
    assert _runs(record) == ["long"]
    assert [e["_attributes"]["status"] for e in cloud.events(1)] == ["cancelled"]
    assert cloud.backlog() == 0


def test_a_job_queued_behind_a_running_one_is_cancelled_without_finishing(
    cloud: Cloud, tmp_path: Path
) -> None:
    record = tmp_path / "runs.txt"
    cloud.publish({"job_id": "first", "workflow": workflow(sleep_s=3, record=str(record))})
    cloud.publish({"job_id": "second", "workflow": workflow(sleep_s=30, record=str(record))})
    worker = cloud.spawn_worker(tmp_path / "worker.log", **FAST)
    try:
        assert _wait_state(cloud, "first", "running").state == "running"
        time.sleep(1.0)  # "second" is prefetched and its attempt record written meanwhile
        cancel.request(_store(), cloud.output_uri, JobRef("second"), by="test")
    finally:
        code = worker.wait(60)
    assert code == ExitCode.OK
    first, second = cloud.result("first"), cloud.result("second")
    assert first is not None and first["status"] == "succeeded"
    assert second is not None and second["status"] == "cancelled"
    assert second["timings"]["execution_s"] < 2  # never ran, or was stopped at once


def test_cancel_after_the_end_changes_nothing(cloud: Cloud) -> None:
    cloud.publish(
        {"job_id": "done", "workflow": workflow(outputs=[{"name": "a.txt", "text": "a"}])}
    )
    assert run_worker(cloud, **FAST) == ExitCode.OK
    before = cloud.result("done")
    late = worker_cli(cloud, "cancel", "done")
    assert late.returncode == ExitCode.JOBS_FAILED and "had finished (succeeded)" in late.stdout
    assert cloud.result("done") == before
    assert "results/done/.cancel" not in cloud.objects("results/done/")
    status = worker_cli(cloud, "status", "done")
    assert status.returncode == 0 and status.stdout.startswith("done succeeded")


def test_cancel_refuses_ids_that_name_no_job_folder(cloud: Cloud) -> None:
    cloud.publish({"job_id": "inner", "workflow": workflow(), "output": {"prefix": "camp"}})
    assert run_worker(cloud, **FAST) == ExitCode.OK
    assert cloud.result("inner", prefix="camp") is not None
    level = worker_cli(cloud, "cancel", "camp")  # a prefix level, not a job
    assert level.returncode == ExitCode.USAGE and "not a job's folder" in level.stderr
    assert "results/camp/.cancel" not in cloud.objects("results/camp/")
    for bad in ("../x", "a/b", "", "a~~b", "~b", "x" * 2000, ".."):
        out = worker_cli(cloud, "cancel", bad)
        assert out.returncode == ExitCode.USAGE, bad
    by_token = worker_cli(cloud, "status", "camp~inner")
    assert by_token.returncode == 0 and by_token.stdout.startswith("inner succeeded")


segment = st.from_regex(r"[A-Za-z0-9._=-]{1,20}", fullmatch=True).filter(
    lambda s: not s.startswith(".")  # ".": the worker's markers
)
job_id = st.from_regex(r"[A-Za-z0-9._-]{1,40}", fullmatch=True).filter(
    lambda s: not s.startswith(("_", "."))  # the worker's own folders and markers
)
prefix_segments = st.lists(segment, max_size=4).filter(lambda s: not s or s[0][0] != "_")


@given(prefix_segments, job_id)
def test_job_references_round_trip_to_exactly_one_folder(segments: list[str], jid: str) -> None:
    ref = JobRef(jid, "/".join(segments))
    assert JobRef.parse(ref.token) == ref
    assert ref.folder("gs://b/out") == "/".join(["gs://b/out", *segments, jid])


@given(st.text(max_size=60))
def test_any_text_is_a_reference_inside_the_output_location_or_refused(text: str) -> None:
    try:
        ref = JobRef.parse(text)
    except BadReference:
        return
    folder = ref.folder("gs://b/out")
    assert folder.startswith("gs://b/out/")
    assert all(p not in ("", ".", "..") for p in folder[len("gs://b/out/") :].split("/"))
    assert not folder[len("gs://b/out/") :].startswith("_")  # never the worker's own folders
    assert not ref.job_id.startswith("_")
    assert not ref.job_id.startswith((".", "_"))
    assert not any(p.startswith(".") for p in folder[len("gs://b/out/") :].split("/"))


def test_references_into_the_workers_own_folders_are_refused() -> None:
    for text in ("_inputs", "_dispatch~j", "camp~_x", "_", ".namespace", "camp~.cancel", ".x~j"):
        with pytest.raises(BadReference, match=r"reserved|the worker.s markers"):
            JobRef.parse(text)
    assert JobRef.parse("camp~_inner~j").folder("gs://b/out") == "gs://b/out/camp/_inner/j"


def test_state_is_read_in_order_result_cancel_running_queued() -> None:
    store = MemoryStore()
    folder = "gs://bkt/out/j"
    assert jobstate.read(store, folder).state == "queued"
    store.put_bytes_once(f"{folder}/.attempt-1.json", b'{"attempt": 1}', "application/json")
    assert jobstate.read(store, folder).state == "running"
    store.put_bytes_once(f"{folder}/.attempt-1.released", b"{}", "application/json")
    assert jobstate.read(store, folder).state == "queued"  # handed back, waiting again
    store.put_bytes_once(f"{folder}/.cancel", b"{}", "application/json")
    assert jobstate.read(store, folder).state == "cancelled"
    store.put_bytes_once(f"{folder}/result.json", b'{"status": "succeeded"}', "application/json")
    assert jobstate.read(store, folder).state == "succeeded"
    store.put_bytes_once("gs://bkt/out/k/result.json", b"not json", "application/json")
    assert jobstate.read(store, "gs://bkt/out/k").state == "failed"


@pytest.mark.parametrize("name", [".cancel", ".namespace", "result.json"])
def test_an_output_can_not_be_named_like_the_cancel_marker(name: str) -> None:
    from worker.message.job import ProducedFile
    from worker.record.outputs import object_name

    assert object_name(ProducedFile(Path("/x"), name, "file")) != name
