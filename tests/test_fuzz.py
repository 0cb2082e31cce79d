"""Fuzzing the edge: whatever a message holds, preparing it ends in a runnable job or in that
job's own failure, never in anything else.

Hypothesis drives the real parser, validation, namespace placement, ledger lookup and input
staging (``worker.loop.prepare.Preparer``) with generated messages, mutations of valid ones and raw
bytes, including the classes that once crashed the worker: deep nesting, integer literals past
Python's digit limit, floats that overflow, NaN/Infinity, lone surrogates, input names where one
is a folder of the other or that are over 255 bytes in UTF-8, huge echoed values. The store is
the in-memory one (``tests/fakes/memstore.py``). A failed job's result document must encode
within the size cap as strict, valid UTF-8 JSON.

The default run tries a few hundred messages per test. A campaign:

    FUZZ_EXAMPLES=20000 .venv/bin/python -m pytest tests/test_fuzz.py -q -p no:randomly
"""

from __future__ import annotations

import base64
import json
import os
import tempfile
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fakes.memstore import MemoryStore
from tests.fakes.publisher import RecordingPublisher
from worker.config import Identity, Limits, Settings
from worker.errors import ErrorType, JobFailed
from worker.executor.comfy import shape
from worker.loop.ledger import Ledger
from worker.loop.prepare import Prepared, Preparer
from worker.message import jsonsafe
from worker.message.job import Delivery
from worker.message.namespace import Namespace
from worker.message.parse import Parser
from worker.message.pipelines import PipelineCatalog
from worker.record import result as results

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "250"))
OUTPUT_URI = "gs://fuzz-out/results"
JOB_FAILURES = {ErrorType.INVALID_JOB, ErrorType.INPUT_ERROR, ErrorType.OOM}
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
LIMITS = Limits(
    allowed_model_buckets=("fuzz-models",),
    allowed_model_hosts=("models.test",),
    max_models=3,
    max_message_bytes=2_000_000,
    max_inputs=4,
    max_input_bytes=4096,
    max_total_input_bytes=8192,
    max_metadata_bytes=2048,
)
CATALOG = PipelineCatalog.load(REPO / "pipelines", seed=lambda: 7)
TRIED: Counter[str] = Counter()  # messages prepared, and how they ended


@pytest.fixture(scope="module", autouse=True)
def tally() -> Iterator[None]:
    yield
    print(f"\nFUZZ messages tried: {sum(TRIED.values())} {dict(TRIED)}")


class Edge:
    """The prefetch side of the worker over an in-memory store."""

    def __init__(self, work: Path) -> None:
        self.store = MemoryStore()
        self.store.put_bytes_once("gs://fuzz-out/in/a.png", b"\x89PNG....", "image/png")
        settings = Settings(output_uri=OUTPUT_URI, work_dir=work, limits=LIMITS)
        parser = Parser(LIMITS, "fuzz-out", CATALOG)
        ledger = Ledger(self.store, RecordingPublisher())
        self.preparer = Preparer(
            parser, self.store, settings, Namespace(self.store, OUTPUT_URI), ledger
        )
        self.stop = threading.Event()
        self.count = 0

    def prepare(self, data: bytes, attributes: dict[str, str] | None = None) -> Prepared:
        self.count += 1
        delivery = Delivery(f"m{self.count}", data, attributes or {}, 1, handle=None)
        prepared = self.preparer.prepare(delivery, self.stop)  # must not raise
        check(prepared)
        early = prepared.early
        TRIED["runnable" if prepared.runnable else str(getattr(early, "error_type", early))] += 1
        prepared.cleanup()
        return prepared


def check(prepared: Prepared) -> None:
    """The property: a runnable job, or a failure of the job's own, recordable as a result."""
    assert prepared.ctx.folder.startswith(OUTPUT_URI + "/")
    if prepared.runnable:
        job = prepared.job
        assert job is not None
        jsonsafe.check_tree(dict(job.workflow))
        for part in (job.workflow, job.metadata, job.params):  # strict JSON all through
            json.dumps(part, allow_nan=False, ensure_ascii=False).encode("utf-8")
        try:
            shape.check_shape(job.workflow)
            shape.copy_for_run(job.workflow)
        except JobFailed as exc:  # the executor's own checks may still refuse it: as a job
            assert exc.error_type is ErrorType.INVALID_WORKFLOW
        return
    assert isinstance(prepared.early, JobFailed), repr(prepared.early)
    assert prepared.early.error_type in JOB_FAILURES, prepared.early.error_type
    doc = results.build(
        prepared.ctx,
        status="failed",
        outputs=[],
        error=prepared.early,
        timings=results.Timings(),
        identity=Identity(),
    )
    data = results.encode(doc)
    assert len(data) <= results.MAX_RESULT_BYTES
    decoded = jsonsafe.loads(data.decode("utf-8"))  # strict: no NaN, valid UTF-8
    assert len(decoded["error"]["message"]) < 5000


@st.composite
def hostile_text(draw: st.DrawFn) -> str:
    return draw(
        st.one_of(
            st.text(max_size=40),
            st.sampled_from(
                [
                    "\ud800",
                    "a\udfffb",
                    "é" * 200,
                    "CUDA error: an illegal memory access",
                    "out of memory",
                    "cudnn_status_not_supported",
                    "a/b",
                    "../x",
                    ".attempt-1.json",
                    "result.json",
                    "K/result.json",
                    "x" * 3000,
                    "\x00",
                    "a\\b",
                ]
            ),
        )
    )


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    hostile_text(),
)
values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(hostile_text(), children, max_size=4)
    ),
    max_leaves=12,
)
names = st.one_of(
    st.sampled_from(["a.png", "a", "a/b", "sub/b.png", "x/" * 9 + "y"]), hostile_text()
)


@st.composite
def input_file(draw: st.DrawFn) -> dict[str, Any]:
    name = draw(names)
    if draw(st.booleans()):
        data = draw(st.one_of(st.binary(max_size=300), st.just(b"x" * 5000)))
        encoded = base64.b64encode(data).decode()
        return {"name": name, "data": draw(st.sampled_from([encoded, "not base64!", ""]))}
    uri = draw(
        st.sampled_from(
            [
                "gs://fuzz-out/in/a.png",
                "gs://fuzz-out/missing.png",
                "gs://elsewhere/x.png",
                "gs://x",
                "s3://a/b",
                "gs://fuzz-out/" + "k" * 1100,
            ]
        )
    )
    return {"name": name, "uri": uri}


@st.composite
def model_entry(draw: st.DrawFn) -> Any:
    """A ``models`` entry: well-formed, or broken in one field, or anything at all."""
    entry = {
        "uri": draw(
            st.one_of(
                st.sampled_from(
                    [
                        "gs://fuzz-models/l.safetensors",
                        "gs://elsewhere/l.safetensors",
                        "https://models.test/x.safetensors?download=1",
                        "https://u:p@models.test/x",
                        "https://evil.test/x",
                        "http://models.test/x",
                        "https://models.test/x#f",
                    ]
                ),
                hostile_text(),
            )
        ),
        "folder": draw(st.one_of(st.sampled_from(["loras", "checkpoints", ".."]), hostile_text())),
        "name": draw(st.one_of(st.sampled_from(["x.safetensors", "a/b.pt", ".x.pt"]), names)),
    }
    if draw(st.booleans()):
        entry["sha256"] = draw(st.one_of(st.just("ab" * 32), hostile_text(), values))
    return draw(st.one_of(st.just(entry), values))


workflows = st.one_of(
    st.just({"1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8}}}),
    st.dictionaries(
        hostile_text(),
        st.fixed_dictionaries(
            {"class_type": hostile_text(), "inputs": st.dictionaries(hostile_text(), values)}
        ),
        max_size=3,
    ),
    values,
)


@st.composite
def message(draw: st.DrawFn) -> dict[str, Any]:
    """A v1 job, a pipeline job or a Runpod body, each field maybe hostile."""
    form = draw(st.sampled_from(["v1", "pipeline", "runpod"]))
    if form == "runpod":
        images = draw(st.lists(input_file(), max_size=3))
        runpod = [{"name": i["name"], "image": i.get("data", i.get("uri"))} for i in images]
        return {"input": {"workflow": draw(workflows), "images": runpod}}
    body: dict[str, Any] = {}
    if form == "v1":
        body["workflow"] = draw(workflows)
    else:
        body["pipeline"] = draw(st.sampled_from([*CATALOG.names(), "nope"]))
        body["params"] = draw(
            st.dictionaries(
                st.sampled_from(["width", "height", "seed", "prompt", "cfg", "denoise", "x"]),
                values,
                max_size=4,
            )
        )
    optional = {
        "job_id": st.one_of(hostile_text(), st.sampled_from(["ok-1", "a.b_c-9", "."]), values),
        "inputs": st.one_of(st.lists(input_file(), max_size=5), values),
        "output": st.one_of(
            st.fixed_dictionaries(
                {
                    "prefix": st.one_of(
                        st.sampled_from(["sub/path", "campaign-7/batch-2", "/abs", "a//b"]),
                        hostile_text(),
                    )
                },
                optional={
                    "format": st.one_of(st.sampled_from(["png", "webp", "jpeg", "gif"]), values),
                    "quality": st.one_of(st.integers(-5, 105), values),
                    "lossless": values,
                    "keep_metadata": values,
                },
            ),
            values,
        ),
        "models": st.one_of(st.lists(model_entry(), max_size=4), values),
        "metadata": st.one_of(st.dictionaries(hostile_text(), values, max_size=4), values),
        "version": st.one_of(st.just(1), values),
    }
    for key, strategy in optional.items():
        if draw(st.booleans()):
            body[key] = draw(strategy)
    return body


def encode(body: Any) -> bytes:
    # Python's encoder writes NaN/Infinity and escapes lone surrogates: both reach the parser.
    return json.dumps(body).encode()


@FUZZ
@given(body=message())
def test_generated_messages_end_runnable_or_as_the_jobs_own_failure(body: dict[str, Any]) -> None:
    with tempfile.TemporaryDirectory() as work:
        Edge(Path(work)).prepare(encode(body))


RAW_CLASSES = [
    "[" * 50_000 + "]" * 50_000,  # past the recursion limit
    '{"workflow": ' + "[" * 900 + "]" * 900 + "}",  # under it, over MAX_DEPTH
    '{"workflow": {"1": {"class_type": "X", "inputs": {"seed": ' + "9" * 5000 + "}}}}",
    '{"pipeline": "demo-invert", "params": {"width": 1e999}}',
    '{"pipeline": "sd15-txt2img", "params": {"cfg": ' + "1" * 400 + "}}",
    '{"workflow": {"1": {"class_type": "X", "inputs": {"v": NaN}}}}',
    '{"workflow": {"1": {"class_type": "X", "inputs": {"v": -Infinity}}}}',
    '{"job_id": "\\ud800", "workflow": {"1": {"class_type": "X"}}}',
    '{"workflow": {"1": {"class_type": "X"}}, "metadata": {"k": "\\udc00"}}',
    '{"job_id": "' + "j" * 3_000_000 + '", "workflow": {}}',
]


@FUZZ
@given(
    raw=st.one_of(
        st.sampled_from(RAW_CLASSES),
        st.binary(max_size=200).map(lambda b: b.decode("latin-1")),
        st.text(max_size=200),
    ),
    cut=st.integers(min_value=0, max_value=400),
    junk=st.binary(max_size=8),
)
def test_raw_and_truncated_bytes_never_escape(raw: str, cut: int, junk: bytes) -> None:
    with tempfile.TemporaryDirectory() as work:
        edge = Edge(Path(work))
        data = raw.encode("utf-8", "surrogatepass")
        edge.prepare(data)
        edge.prepare(data[: max(0, len(data) - cut)] + junk)  # truncated, with garbage


VALID = {
    "job_id": "fuzz-1",
    "workflow": {"1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8}}},
    "inputs": [
        {"name": "a.png", "uri": "gs://fuzz-out/in/a.png"},
        {"name": "sub/b.png", "data": base64.b64encode(b"png").decode()},
    ],
    "output": {"prefix": "campaign-7/batch-2"},
    "metadata": {"user": 42},
}


@st.composite
def mutated(draw: st.DrawFn) -> Any:
    """The valid message with one place (a field, a nested value) replaced by something else."""
    doc = json.loads(json.dumps(VALID))
    node: Any = doc
    for _ in range(draw(st.integers(min_value=0, max_value=4))):
        if isinstance(node, dict) and node:
            key = draw(st.sampled_from(sorted(node)))
            if not isinstance(node[key], dict | list) or not node[key]:
                node[key] = draw(values)
                return doc
            node = node[key]
        elif isinstance(node, list) and node:
            index = draw(st.integers(min_value=0, max_value=len(node) - 1))
            if not isinstance(node[index], dict | list):
                node[index] = draw(values)
                return doc
            node = node[index]
    if isinstance(node, dict):
        node[draw(hostile_text())] = draw(values)
    elif isinstance(node, list):
        node.append(draw(values))
    return doc


@FUZZ
@given(body=mutated())
def test_mutated_valid_messages_end_runnable_or_as_the_jobs_own_failure(body: Any) -> None:
    with tempfile.TemporaryDirectory() as work:
        edge = Edge(Path(work))
        prepared = edge.prepare(encode(body))
        if body == VALID:
            assert prepared.runnable


def test_the_named_classes_fail_alone_with_what_to_fix() -> None:
    with tempfile.TemporaryDirectory() as work:
        edge = Edge(Path(work))
        expect = {
            RAW_CLASSES[0]: "nested deeper",
            RAW_CLASSES[1]: "nested deeper",
            RAW_CLASSES[2]: "integer",
            RAW_CLASSES[3]: "out of range",
            RAW_CLASSES[4]: "integer",
            RAW_CLASSES[5]: "NaN",
            RAW_CLASSES[6]: "Infinity",
            RAW_CLASSES[7]: "lone surrogate",
            RAW_CLASSES[8]: "lone surrogate",
        }
        for raw, fragment in expect.items():
            prepared = edge.prepare(raw.encode())
            assert isinstance(prepared.early, JobFailed)
            assert prepared.early.error_type is ErrorType.INVALID_JOB
            assert fragment in prepared.early.message, (fragment, prepared.early.message)
        huge = edge.prepare(RAW_CLASSES[9].encode())
        assert isinstance(huge.early, JobFailed) and len(huge.early.message) < 600
        clash = {
            "workflow": VALID["workflow"],
            "inputs": [{"name": "a", "data": "eA=="}, {"name": "a/b", "data": "eA=="}],
        }
        prepared = edge.prepare(encode(clash))
        assert isinstance(prepared.early, JobFailed) and "clash" in prepared.early.message
        long_name = {"workflow": VALID["workflow"], "inputs": [{"name": "é" * 200, "data": "eA=="}]}
        prepared = edge.prepare(encode(long_name))
        assert isinstance(prepared.early, JobFailed) and "bytes" in prepared.early.message
