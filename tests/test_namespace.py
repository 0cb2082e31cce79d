"""The job namespace: whatever its prefix, id and output names, no job can make an object appear
under another job's folder, and no output is named like a result or a marker.

The property test generates backlogs of jobs over a small alphabet (so prefixes, ids and names
collide often: prefix ``P/J`` against job ``J`` under ``P``, outputs named ``K/result.json``),
runs each through the real parser and namespace placement (``Preparer``), then writes what that
job would write (attempt markers, outputs under ``object_names``, ``result.json`` through the
ledger) into the in-memory store, and checks every object against every accepted job's folder.
"""

from __future__ import annotations

import json
import tempfile
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fakes.memstore import MemoryStore
from tests.fakes.publisher import RecordingPublisher
from worker.config import Identity, Limits, Settings
from worker.errors import ErrorType, JobFailed
from worker.loop.attempts import Markers
from worker.loop.ledger import Ledger
from worker.loop.prepare import Prepared, Preparer
from worker.message.job import Delivery, ProducedFile
from worker.message.namespace import Namespace
from worker.message.parse import Parser
from worker.record import outputs
from worker.record import result as results

ROOT = "gs://ns-out/results"
WORKFLOW = {"1": {"class_type": "Scripted", "inputs": {}}}


@dataclass
class World:
    store: MemoryStore
    preparer: Preparer
    ledger: Ledger
    markers: Markers
    writers: dict[str, str]  # object URI -> the folder of the job that wrote it
    accepted: set[str]  # folders of jobs that were placed in their own folder

    @classmethod
    def make(cls, work: Path) -> World:
        store = MemoryStore()
        ledger = Ledger(store, RecordingPublisher())
        settings = Settings(output_uri=ROOT, work_dir=work)
        preparer = Preparer(
            Parser(Limits(), "ns-out"), store, settings, Namespace(store, ROOT), ledger
        )
        return cls(store, preparer, ledger, Markers(store, Identity()), {}, set())

    def run(self, message_id: str, body: Mapping[str, object], names: list[str]) -> Prepared:
        """What the worker writes for this message, each write tagged with its folder."""
        delivery = Delivery(message_id, json.dumps(body).encode(), {}, 1, handle=None)
        prepared = self.preparer.prepare(delivery, threading.Event())
        prepared.cleanup()
        folder = prepared.ctx.folder
        before = len(self.store.writes)
        error: JobFailed | None = None
        if prepared.runnable:
            self.accepted.add(folder)
            attempt = self.markers.start(
                folder,
                prepared.attempt,
                job_id=prepared.ctx.job_id,
                message_id=message_id,
                delivery_attempt=1,
            )
            self.markers.release(folder, attempt, "succeeded")
            files = [ProducedFile(Path("/dev/null"), n, "file") for n in names]
            try:
                for name in outputs.object_names(files, folder):
                    self.store.put_bytes_once(f"{folder}/{name}", b"x", "image/png")
            except JobFailed as exc:
                error = exc
        elif isinstance(prepared.early, JobFailed):
            error = prepared.early
        if prepared.existing is None:
            doc = results.build(
                prepared.ctx,
                status="failed" if error else "succeeded",
                outputs=[],
                error=error,
                timings=results.Timings(),
                identity=Identity(),
            )
            self.ledger.record(
                prepared.ctx, results.encode(doc), results.attributes(doc), redelivered=False
            )
        for uri in self.store.writes[before:]:
            self.writers.setdefault(uri, folder)
        return prepared


SEGMENTS = ["a", "b", "J", "K", "result.json", ".namespace", "_inputs", "_dispatch", "_x"]
segment = st.sampled_from(SEGMENTS)
prefixes = st.one_of(
    st.lists(segment, max_size=3).map("/".join),
    st.sampled_from(["sub/path", "campaign-7/batch-2", "../x", "a//b", "/abs"]),
)
job_ids = st.one_of(segment, st.sampled_from(["..", "", "a/b", "J" * 200]))
output_names = st.lists(
    st.one_of(
        st.sampled_from(
            [
                "K/result.json",
                "result.json",
                ".attempt-1.json",
                ".namespace",
                "a/b.png",
                "a__b.png",
                "ok.png",
                "J/K/x.png",
                "_result.json",
            ]
        ),
        st.lists(segment, min_size=1, max_size=3).map("/".join),
    ),
    max_size=4,
)
backlogs = st.lists(
    st.tuples(prefixes, job_ids, output_names, st.booleans()), min_size=1, max_size=12
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(backlog=backlogs)
def test_no_job_writes_under_another_jobs_folder(
    backlog: list[tuple[str, str, list[str], bool]],
) -> None:
    with tempfile.TemporaryDirectory() as work:
        world = World.make(Path(work))
        for i, (prefix, job_id, names, with_id) in enumerate(backlog):
            body: dict[str, object] = {"workflow": WORKFLOW, "output": {"prefix": prefix}}
            if with_id:
                body["job_id"] = job_id
            # Message ids may look like job ids too (a sender can pick any job id).
            message_id = ["a", "J", f"m{i}"][i % 3] if i < 3 else f"m{i}"
            world.run(message_id, body, names)
        for uri, writer in world.writers.items():
            name = uri.rsplit("/", 1)[-1]
            assert uri.rsplit("/", 1)[0] == writer, (uri, writer)  # directly in its own folder
            for folder in world.accepted - {writer}:
                assert not uri.startswith(folder + "/"), (uri, writer, folder)
            if name.startswith(".") or name == results.RESULT_NAME:
                # Only the worker's own markers and results carry reserved names.
                assert name in (".namespace", results.RESULT_NAME) or name.startswith(
                    ".attempt-"
                ), uri
        for folder in world.accepted:  # every accepted job's result is its own
            assert f"{folder}/result.json" in world.store.objects
        for uri in world.store.writes:  # the worker's own folders (_inputs, _dispatch) stay its own
            assert not uri[len(ROOT) + 1 :].startswith("_"), uri


def test_free_form_prefixes_stay_valid() -> None:
    with tempfile.TemporaryDirectory() as work:
        world = World.make(Path(work))
        for prefix in ("sub/path", "campaign-7/batch-2"):
            body = {"job_id": "j1", "workflow": WORKFLOW, "output": {"prefix": prefix}}
            prepared = world.run(f"m-{prefix}", body, ["ok.png"])
            assert prepared.runnable and prepared.ctx.folder == f"{ROOT}/{prefix}/j1"


def test_a_job_whose_folder_is_another_jobs_prefix_level_is_refused_either_way() -> None:
    with tempfile.TemporaryDirectory() as work:
        world = World.make(Path(work))
        # (P, J) first: its folder P/J is then a job folder, so (P/J, K) may not use it.
        first = world.run(
            "m1", {"job_id": "J", "workflow": WORKFLOW, "output": {"prefix": "P"}}, []
        )
        second = world.run(
            "m2", {"job_id": "K", "workflow": WORKFLOW, "output": {"prefix": "P/J"}}, []
        )
        assert first.runnable and first.ctx.folder == f"{ROOT}/P/J"
        assert isinstance(second.early, JobFailed)
        assert second.early.error_type is ErrorType.INVALID_JOB
        assert f"{ROOT}/P/J" in second.early.message and "another job" in second.early.message
        assert second.ctx.folder == f"{ROOT}/m2" and second.ctx.job_id == "m2"
        # The other order: (P/J, K) first makes P/J a prefix level; (P, J) is refused.
        world = World.make(Path(work) / "2")
        first = world.run(
            "m3", {"job_id": "K", "workflow": WORKFLOW, "output": {"prefix": "P/J"}}, []
        )
        second = world.run(
            "m4", {"job_id": "J", "workflow": WORKFLOW, "output": {"prefix": "P"}}, []
        )
        assert first.runnable and isinstance(second.early, JobFailed)
        assert "prefix level" in second.early.message
        assert f"{ROOT}/m4/result.json" in world.store.objects


def test_outputs_are_one_segment_and_never_reserved_names() -> None:
    def name(n: str) -> str:
        return outputs.object_name(ProducedFile(Path("x"), n, "image"))

    assert name("K/result.json") == "K__result.json"
    assert name("result.json") == "_result.json"
    assert name(".attempt-1.json") == "_.attempt-1.json"
    assert name("sub/.hidden.png") == "sub__.hidden.png"
    files = [ProducedFile(Path("x"), n, "image") for n in ("a/b.png", "a__b.png")]
    try:
        outputs.object_names(files, f"{ROOT}/j")
    except JobFailed as exc:
        assert exc.error_type is ErrorType.EXECUTION_ERROR and "distinct" in exc.message
    else:
        raise AssertionError("a flattening collision must fail the job")


def test_names_starting_with_an_underscore_or_a_dot_are_refused_under_the_message_id(
    tmp_path: Path,
) -> None:
    world = World.make(tmp_path)
    for body in (
        {"workflow": WORKFLOW, "job_id": "_inputs"},
        {"workflow": WORKFLOW, "job_id": "_dispatch", "output": {"prefix": "p"}},
        {"input": {"workflow": WORKFLOW}, "job_id": "_x"},
        {"workflow": WORKFLOW, "job_id": ".namespace"},
        {"workflow": WORKFLOW, "job_id": ".cancel", "output": {"prefix": "p"}},
    ):
        prepared = world.run("m1", body, [])
        assert prepared.ctx.folder == f"{ROOT}/m1"
        assert isinstance(prepared.early, JobFailed)
        assert prepared.early.error_type is ErrorType.INVALID_JOB
        assert "reserved for the worker's own folders and markers" in prepared.early.message
    world = World.make(tmp_path)
    prepared = world.run("m2", {"workflow": WORKFLOW, "output": {"prefix": "_inputs/x"}}, [])
    assert isinstance(prepared.early, JobFailed) and "reserved" in prepared.early.message
    prepared = world.run("m3", {"workflow": WORKFLOW, "output": {"prefix": "p/.namespace"}}, [])
    assert isinstance(prepared.early, JobFailed) and "worker's markers" in prepared.early.message
    assert not any(uri.startswith(f"{ROOT}/_") for uri in world.store.writes)
