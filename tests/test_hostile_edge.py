"""The message edge and the job namespace under messages that look alike: redeliveries against
second jobs under one id, ids that differ only in case or a trailing dot, prefixes that
normalise to one folder, ``job_id`` as null or as a contradicting or huge attribute, seeds drawn
for a pipeline job that is delivered twice, base64 in the alphabets and paddings producers send,
and metadata that swells when indented.

The real parser, namespace, pipeline catalog, input decoding and result encoding run on the
in-memory store (``tests/fakes/memstore.py``, pinned to fake-gcs-server by ``tests/contract``);
the loop tests run ``python -m worker run``'s wiring on the memory adapters
(``tests/memory/world.py``).
"""

from __future__ import annotations

import base64
import json
import random
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fakes.memstore import MemoryStore
from tests.fakes.scripted import workflow
from tests.memory.world import World
from worker.config import Identity, Limits
from worker.errors import ErrorType, JobFailed
from worker.exitcodes import ExitCode
from worker.message import inputs
from worker.message.fingerprint import fingerprint
from worker.message.job import Delivery, Job, StoredOutput
from worker.message.namespace import Namespace
from worker.message.parse import Parser, Refused
from worker.message.pipelines import PipelineCatalog, keyed_seed
from worker.record import result as results

REPO = Path(__file__).resolve().parent.parent
ROOT = "gs://edge-out/results"
PROPERTY = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
CATALOG = PipelineCatalog.load(REPO / "pipelines")  # the real seeds: no seed function pinned
PARSER = Parser(Limits(), "edge-out", CATALOG)
GOOD = workflow(sleep_s=0.05, outputs=[{"name": "ok.png", "bytes": 64}])


def delivery(body: Any, message_id: str = "m1", **attributes: str) -> Delivery:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return Delivery(message_id, data, attributes, 1, handle=None)


def parse(body: Any, message_id: str = "m1", **attributes: str) -> Job:
    return PARSER.parse(delivery(body, message_id, **attributes))


# -- what makes two messages one job ------------------------------------------------------------

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**63),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=8),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=10,
)
bodies = st.fixed_dictionaries(
    {"workflow": st.dictionaries(st.text(min_size=1, max_size=3), json_values, max_size=3)},
    optional={
        "inputs": st.lists(st.fixed_dictionaries({"name": st.text(max_size=5)}), max_size=2),
        "output": st.fixed_dictionaries({"format": st.sampled_from(["png", "webp"])}),
    },
)


def shuffled(value: Any, rng: random.Random) -> Any:
    if isinstance(value, dict):
        items = list(value.items())
        rng.shuffle(items)
        return {k: shuffled(v, rng) for k, v in items}
    if isinstance(value, list):
        return [shuffled(v, rng) for v in value]
    return value


@PROPERTY
@given(
    body=bodies,
    seed=st.integers(0, 1000),
    job_id=st.text(max_size=5),
    meta=json_values,
    prefix=st.text(max_size=5),
)
def test_a_redelivery_has_the_fingerprint_of_its_first_delivery(
    body: dict[str, Any], seed: int, job_id: str, meta: Any, prefix: str
) -> None:
    """Re-serialised, reordered, re-stamped with metadata, id, version or a prefix spelling:
    still the same job. Any change to what runs: another job."""
    first = fingerprint(body)
    again = shuffled(body, random.Random(seed))
    again = json.loads(json.dumps(again, indent=seed % 3 or None))
    again |= {"job_id": job_id, "metadata": meta, "version": 1}
    again["output"] = {**again.get("output", {}), "prefix": prefix}
    assert fingerprint(again) == first
    other = json.loads(json.dumps(body))
    other["workflow"]["+"] = 0
    assert fingerprint(other) != first
    long = "A" * 10_000
    assert fingerprint({**body, "inputs": [{"name": "a", "data": long}]}) != fingerprint(
        {**body, "inputs": [{"name": "a", "data": long[:-4] + "AAA="}]}
    )


def place(namespace: Namespace, job: Job, message_id: str) -> Any:
    return namespace.place(job.output_prefix, job.job_id, message_id, job.fingerprint)


def test_a_second_job_under_a_used_id_is_refused_and_a_redelivery_is_not() -> None:
    store = MemoryStore()
    namespace = Namespace(store, ROOT)
    first = parse({"job_id": "a", "workflow": GOOD}, "m1")
    assert place(namespace, first, "m1").refusal is None
    # The same message again, or re-sent with new metadata / a prefix spelt "p/" for "p":
    again = place(namespace, parse({"job_id": "a", "workflow": GOOD, "metadata": {"t": 2}}), "m1")
    assert again.refusal is None and not again.fresh and again.folder == f"{ROOT}/a"
    p1 = parse({"job_id": "b", "workflow": GOOD, "output": {"prefix": "p"}}, "m2")
    p2 = parse({"job_id": "b", "workflow": GOOD, "output": {"prefix": "p/"}}, "m3")
    assert place(namespace, p1, "m2").refusal is None
    assert place(namespace, p2, "m3").refusal is None

    other = parse({"job_id": "a", "workflow": workflow(outputs=[{"name": "y.png"}])}, "m4")
    placed = place(namespace, other, "m4")
    assert placed.folder == f"{ROOT}/m4" and placed.fresh  # its own result goes here
    assert isinstance(placed.refusal, JobFailed)
    assert placed.refusal.error_type is ErrorType.INVALID_JOB
    assert "already used by a message with other content" in placed.refusal.message
    assert "needs its own job_id" in placed.refusal.message
    marker = json.loads(store.objects[f"{ROOT}/a/.namespace"].data)
    assert marker["role"] == "job" and marker["fingerprint"] == first.fingerprint


def test_a_refused_message_never_takes_over_another_jobs_folder() -> None:
    """A message whose prefix is unreadable is recorded under its job id at the root (the
    design's rule): if that id is another job's, under its message id instead."""
    namespace = Namespace(MemoryStore(), ROOT)
    assert place(namespace, parse({"job_id": "a", "workflow": GOOD}), "m1").refusal is None
    with pytest.raises(Refused) as info:
        parse({"job_id": "a", "workflow": GOOD, "output": {"prefix": "bad prefix!"}}, "m2")
    refused = info.value
    assert refused.job_id == "a" and refused.fingerprint is not None
    placed = namespace.place_refused(refused.job_id, refused.prefix, "m2", refused.fingerprint)
    assert placed.folder == f"{ROOT}/m2" and placed.fresh
    # Unreadable bytes carry no fingerprint: recorded under the message id as before.
    with pytest.raises(Refused) as info:
        parse(b"{not json", "m3")
    assert info.value.fingerprint is None and info.value.job_id == "m3"


def test_folders_without_a_fingerprint_and_message_id_folders_stay_the_job_they_were() -> None:
    store = MemoryStore()
    namespace = Namespace(store, ROOT)
    # cancel claims a folder before its job arrives (and older workers wrote no fingerprint)
    assert namespace.claim_job("", "c") is None
    assert place(namespace, parse({"job_id": "c", "workflow": GOOD}), "m1").refusal is None
    # No job id: the folder is the message id's, the only place its result could go.
    first = parse({"workflow": GOOD}, "77")
    assert place(namespace, first, "77").refusal is None
    second = parse({"workflow": workflow(outputs=[{"name": "z.png"}])}, "77")
    placed = place(namespace, second, "77")
    assert placed.refusal is None and placed.folder == f"{ROOT}/77"


# -- job ids and prefixes that look alike -------------------------------------------------------


@PROPERTY
@given(
    base=st.text("abAB09", min_size=1, max_size=4).filter(lambda s: s[0].isalnum()),
    prefix=st.sampled_from(["", "p", "P", "p/q"]),
)
def test_ids_that_differ_in_case_or_a_trailing_dot_are_distinct_jobs(
    base: str, prefix: str
) -> None:
    namespace = Namespace(MemoryStore(), ROOT)
    variants = sorted({base, base.upper(), base.lower(), base + ".", base + "..", base + "-"})
    folders = set()
    for i, job_id in enumerate(variants):
        body = {"job_id": job_id, "workflow": workflow(n=i), "output": {"prefix": prefix}}
        placed = place(namespace, parse(body, f"m{i}"), f"m{i}")
        assert placed.refusal is None, (job_id, placed.refusal)
        assert placed.folder.rsplit("/", 1)[-1] == job_id
        folders.add(placed.folder)
    assert len(folders) == len(variants)


@pytest.mark.parametrize(
    "prefix", ["%2e%2e", "a/%2F", "a/./b", "a/../b", "./a", "a\\b", "a/\u00e9", "a/b\x00", "a b"]
)
def test_prefixes_that_decode_or_normalise_elsewhere_are_refused_saying_what_is_allowed(
    prefix: str,
) -> None:
    with pytest.raises(Refused) as info:
        parse({"job_id": "j", "workflow": GOOD, "output": {"prefix": prefix}})
    assert info.value.error.error_type is ErrorType.INVALID_JOB
    assert '"output.prefix"' in info.value.error.message
    assert info.value.job_id == "j" and info.value.prefix == ""


def test_job_id_null_falls_back_to_the_attribute_as_an_absent_one_does() -> None:
    assert parse({"job_id": None, "workflow": GOOD}, "m9", job_id="from-attr").job_id == "from-attr"
    assert parse({"workflow": GOOD}, "m9", job_id="from-attr").job_id == "from-attr"
    assert parse({"job_id": None, "workflow": GOOD}, "m9").job_id == "m9"


# -- a pipeline job delivered twice renders one workflow -----------------------------------------


@PROPERTY
@given(job_id=st.text("abcXYZ019._-", min_size=1, max_size=12).filter(lambda s: s[0].isalnum()))
def test_a_redelivered_pipeline_job_draws_the_same_seed(job_id: str) -> None:
    body = {"job_id": job_id, "pipeline": "sd15-txt2img", "params": {"prompt": "a fox"}}
    first, again = parse(body, "m1"), parse(body, "m1-redelivered")
    assert first.workflow == again.workflow and first.params == again.params
    assert first.params is not None
    seed = first.params["seed"]
    assert first.workflow["3"]["inputs"]["seed"] == seed and 0 <= seed < 2**53
    other = parse({**body, "output": {"prefix": "elsewhere"}})  # another folder, another job
    assert other.params is not None and other.params["seed"] == keyed_seed(
        f"elsewhere/{job_id}", "seed"
    )
    given_seed = parse({**body, "params": {"prompt": "a fox", "seed": 5}})
    assert given_seed.params is not None and given_seed.params["seed"] == 5


def test_seeds_of_different_jobs_differ_and_renders_without_a_job_stay_random() -> None:
    seeds = {
        (
            parse({"job_id": f"j{i}", "pipeline": "sd15-txt2img", "params": {"prompt": "x"}}).params
            or {}
        )["seed"]
        for i in range(50)
    }
    assert len(seeds) == 50
    drawn = {CATALOG.render("sd15-txt2img", {"prompt": "x"}).params["seed"] for _ in range(5)}
    assert len(drawn) == 5


# -- base64 as producers send it ----------------------------------------------------------------


@PROPERTY
@given(data=st.binary(min_size=1, max_size=300), cuts=st.lists(st.integers(0, 400), max_size=6))
def test_base64_with_line_breaks_and_data_urls_decodes_to_the_same_bytes(
    data: bytes, cuts: list[int]
) -> None:
    text = base64.b64encode(data).decode()
    for cut in sorted(set(cuts), reverse=True):
        text = text[:cut] + "\r\n " + text[cut:]
    assert inputs.decode_base64("a.png", text) == data
    assert inputs.decode_base64("a.png", "data:image/png;base64," + text) == data


@PROPERTY
@given(data=st.binary(min_size=1, max_size=300))
def test_refused_base64_says_which_alphabet_or_padding_to_use(data: bytes) -> None:
    url_safe = base64.urlsafe_b64encode(data).decode()
    if "-" in url_safe or "_" in url_safe:
        message = _refusal(url_safe)
        assert "URL-safe base64" in message and "'+' and '/'" in message
    unpadded = base64.b64encode(data).decode().rstrip("=")
    if len(unpadded) % 4:
        assert "pad it with '='" in _refusal(unpadded)
    assert "not in the base64 alphabet" in _refusal(base64.b64encode(data).decode() + "é")


def _refusal(text: str) -> str:
    with pytest.raises(JobFailed) as info:
        inputs.decode_base64("a.png", text)
    assert info.value.error_type is ErrorType.INPUT_ERROR
    assert info.value.message.startswith("input 'a.png': data is not valid base64")
    return info.value.message


def test_large_base64_takes_the_same_decisions_as_small() -> None:
    """From 1 MiB on a child process decodes; what it would read differently goes back to the
    strict decoder, so the size of a message never changes whether it is accepted."""
    data = bytes(range(256)) * 4200
    limits = Limits(max_input_bytes=10**7, max_total_input_bytes=10**7)
    standard = base64.b64encode(data).decode()
    with tempfile.TemporaryDirectory() as work:
        dest = Path(work) / "x"
        for text in (standard, base64.encodebytes(data).decode().replace("\n", "\r\n")):
            assert inputs.decode_base64_to("a", text, dest, 10**7, limits) == len(data)
            assert dest.read_bytes() == data
        for text, says in (
            (base64.urlsafe_b64encode(data[:-1]).decode(), "URL-safe"),
            (base64.b64encode(data[:-1]).decode().rstrip("="), "pad it with '='"),
            (standard[:1000] + "=" + standard[1000:], "base64"),
        ):
            with pytest.raises(JobFailed, match=says):
                inputs.decode_base64_to("a", text, dest, 10**7, limits)


# -- results stay bounded and keep what the sender asked to get back -----------------------------


def test_deep_metadata_at_its_limit_is_echoed_even_when_indenting_would_pass_the_cap() -> None:
    depth = 58
    meta = {"m": json.loads("[" * depth + ", ".join(["0"] * 5300) + "]" * depth)}
    job = parse({"job_id": "meta", "workflow": GOOD, "metadata": meta})
    outputs = [
        StoredOutput(
            f"{ROOT}/meta/o{i:05d}.png", f"o{i:05d}.png", "image/png", 1, "c", "m", "image", "9"
        )
        for i in range(2000)
    ]
    ctx = results.JobContext("meta", "m1", 1, f"{ROOT}/meta", metadata=job.metadata)
    doc = results.build(
        ctx,
        status="succeeded",
        outputs=outputs,
        error=None,
        timings=results.Timings(),
        identity=Identity(),
    )
    assert len(json.dumps(doc, indent=2, ensure_ascii=False).encode()) > results.MAX_RESULT_BYTES
    data = results.encode(doc)
    assert len(data) <= results.MAX_RESULT_BYTES
    decoded = json.loads(data)
    assert decoded["metadata"] == meta and "metadata" not in decoded["truncated"]


# -- through the loop --------------------------------------------------------------------------


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path / "work")


def test_look_alike_messages_each_end_once_and_the_worker_exits_zero(world: World) -> None:
    sent = {
        "upper": world.publish({"job_id": "Ab", "workflow": GOOD}),
        "lower": world.publish({"job_id": "ab", "workflow": GOOD}),
        "dot": world.publish({"job_id": "ab.", "workflow": GOOD}),
        "null-id": world.publish({"job_id": None, "workflow": GOOD}, job_id="by-attr"),
        # The body's job_id wins over the attribute's (docs/job-message.md's order).
        "both": world.publish({"job_id": "body-id", "workflow": GOOD}, job_id="attr-id"),
        "huge-attr": world.publish({"workflow": GOOD}, job_id="x" * 1_000_000),
        "runpod-attr": world.publish({"input": {"workflow": GOOD}}, job_id="rp"),
    }
    assert world.run(IDLE_EXIT_S=2) == ExitCode.OK
    for job_id in ("Ab", "ab", "ab.", "by-attr", "body-id", "rp"):
        result = world.result(job_id)
        assert result is not None and result["status"] == "succeeded", job_id
        assert result["outputs"][0]["uri"] == f"gs://{world.bucket}/results/{job_id}/ok.png"
    huge = world.result(sent["huge-attr"])
    assert huge is not None and huge["error"]["type"] == "invalid_job"
    assert len(json.dumps(huge)) < 20_000 and "is invalid" in huge["error"]["message"]
    assert world.result("attr-id") is None
    results_written = [n for n in world.objects("results/") if n.endswith("/result.json")]
    assert len(results_written) == len(sent) == len(world.events())
    assert world.backlog() == 0 and world.subscription.dead_letters == []


def test_a_second_job_under_a_used_id_is_refused_not_answered_with_the_first_ones_result(
    world: World,
) -> None:
    first = world.publish({"job_id": "a", "workflow": GOOD})
    second = world.publish({"job_id": "a", "workflow": workflow(outputs=[{"name": "y.png"}])})
    assert world.run(IDLE_EXIT_S=2) == ExitCode.OK
    result = world.result("a")
    assert result is not None and result["message_id"] == first
    assert [o["name"] for o in result["outputs"]] == ["ok.png"]
    refused = world.result(second)
    assert refused is not None and refused["error"]["type"] == "invalid_job"
    assert "already used by a message with other content" in refused["error"]["message"]
    assert sorted(e["message_id"] for e in world.events()) == sorted([first, second])


def test_an_invalid_message_is_never_announced_as_another_jobs_success(world: World) -> None:
    world.publish({"job_id": "a", "workflow": GOOD})
    bad = world.publish({"job_id": "a", "workflow": GOOD, "output": {"prefix": "bad prefix!"}})
    assert world.run(IDLE_EXIT_S=2) == ExitCode.OK
    refused = world.result(bad)
    assert refused is not None and refused["status"] == "failed"
    assert '"output.prefix"' in refused["error"]["message"]
    events = {e["message_id"]: e for e in world.events()}
    assert events[bad]["status"] == "failed"
