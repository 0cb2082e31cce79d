"""Message parsing and limits: every refusal has a stable type and says what to fix."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from worker.config import Limits
from worker.errors import ErrorType
from worker.message.job import Delivery
from worker.message.parse import Parser, Refused

WORKFLOW = {"1": {"class_type": "EmptyImage", "inputs": {"width": 8}}}


def delivery(body: Any, message_id: str = "m-1", **attributes: str) -> Delivery:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return Delivery(message_id, data, attributes, 1, handle=None)


def parser(**limits: Any) -> Parser:
    return Parser(Limits(**limits), output_bucket="out-bucket")


def refused(body: Any, **limits: Any) -> Refused:
    with pytest.raises(Refused) as info:
        parser(**limits).parse(delivery(body))
    assert info.value.error.error_type is ErrorType.INVALID_JOB
    return info.value


def test_v1_job_with_every_field() -> None:
    job = parser().parse(
        delivery(
            {
                "version": 1,
                "job_id": "cat-7",
                "workflow": WORKFLOW,
                "inputs": [
                    {"name": "a.png", "uri": "gs://out-bucket/in/a.png"},
                    {"name": "sub/b.png", "data": base64.b64encode(b"png").decode()},
                ],
                "output": {"prefix": "campaign/2026"},
                "metadata": {"user": 42},
            }
        )
    )
    assert (job.job_id, job.output_prefix, job.form) == ("cat-7", "campaign/2026", "v1")
    assert [i.name for i in job.inputs] == ["a.png", "sub/b.png"]
    assert job.metadata == {"user": 42}


def test_job_id_defaults_to_attribute_then_message_id() -> None:
    assert parser().parse(delivery({"workflow": WORKFLOW}, job_id="from-attr")).job_id == (
        "from-attr"
    )
    assert parser().parse(delivery({"workflow": WORKFLOW}, message_id="9876")).job_id == "9876"


def test_runpod_body_is_a_job() -> None:
    image = "data:image/png;base64," + base64.b64encode(b"\x89PNG").decode()
    job = parser().parse(
        delivery(
            {
                "input": {"workflow": WORKFLOW, "images": [{"name": "in.png", "image": image}]},
                "webhook": "https://example.com/hook",
            }
        )
    )
    assert job.form == "runpod"
    assert job.inputs[0].name == "in.png" and job.inputs[0].data == image
    assert any("webhook" in w for w in job.warnings)


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (b"{not json", "not valid JSON"),
        (b"\xff\xfe", "not UTF-8"),
        (b"[1, 2]", "must be a JSON object"),
    ],
)
def test_unreadable_messages_are_recorded_under_the_message_id(data: bytes, fragment: str) -> None:
    with pytest.raises(Refused) as info:
        parser().parse(delivery(data, message_id="555"))
    assert info.value.job_id == "555" and info.value.prefix == ""
    assert fragment in info.value.error.message


def test_oversized_message() -> None:
    big = {"workflow": WORKFLOW, "metadata": {"pad": "x" * 5000}}
    r = refused(big, max_message_bytes=2048)
    assert "MAX_MESSAGE_BYTES" in r.error.message and r.job_id == "m-1"


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"workflow": WORKFLOW, "pipeline": "x"}, "exactly one of"),
        ({}, "exactly one of"),
        ({"workflow": WORKFLOW, "colour": 1}, "unknown field(s) ['colour']"),
        ({"workflow": WORKFLOW, "version": 2}, "version 2"),
        ({"workflow": []}, "non-empty object"),
        ({"workflow": {"1": {"inputs": {}}}}, "class_type"),
        ({"workflow": {"nodes": [], "links": []}}, "UI format"),
        ({"workflow": WORKFLOW, "inputs": {"a": 1}}, '"inputs" must be a list'),
        ({"workflow": WORKFLOW, "inputs": [{"name": "a"}]}, "inputs[0] must be"),
        ({"workflow": WORKFLOW, "inputs": [{"name": "a", "data": 5}]}, "base64 text"),
        ({"workflow": WORKFLOW, "metadata": []}, "JSON object"),
        ({"input": {"images": []}}, "input.workflow"),
        ({"input": {"workflow": WORKFLOW, "images": [{"name": "a"}]}}, "input.images[0]"),
        ({"input": {"workflow": WORKFLOW, "extra": 1}}, "unknown field(s) ['extra']"),
    ],
)
def test_schema_violations(body: dict[str, Any], fragment: str) -> None:
    assert fragment in refused(body).error.message


@pytest.mark.parametrize(
    "prefix", ["../escape", "a/../../b", "/abs", "gs://other/x", "a//b", "sp ace", "a/./b"]
)
def test_prefix_traversal_is_refused_and_recorded_without_the_prefix(prefix: str) -> None:
    r = refused({"job_id": "j", "workflow": WORKFLOW, "output": {"prefix": prefix}})
    assert r.prefix == "" and r.job_id == "j"
    assert "output.prefix" in r.error.message


@pytest.mark.parametrize("name", ["../x.png", "/etc/passwd", "a/../../x", "a\\b.png", "", "."])
def test_input_name_traversal(name: str) -> None:
    body = {"workflow": WORKFLOW, "inputs": [{"name": name, "data": "eA=="}]}
    assert "inputs[0].name" in refused(body).error.message


def test_invalid_job_id_falls_back_to_message_id() -> None:
    r = refused({"job_id": "../../x", "workflow": WORKFLOW, "output": {"prefix": "p"}})
    assert r.job_id == "m-1" and r.prefix == ""


def test_limits_on_inputs_and_metadata() -> None:
    many = [{"name": f"{i}.png", "data": "eA=="} for i in range(3)]
    assert (
        "MAX_INPUTS" in refused({"workflow": WORKFLOW, "inputs": many}, max_inputs=2).error.message
    )
    dupes = [{"name": "a.png", "data": "eA=="}] * 2
    assert "appears twice" in refused({"workflow": WORKFLOW, "inputs": dupes}).error.message
    meta = {"workflow": WORKFLOW, "metadata": {"k": "v" * 100}}
    assert "MAX_METADATA_BYTES" in refused(meta, max_metadata_bytes=50).error.message


def test_input_buckets_are_restricted() -> None:
    body = {"workflow": WORKFLOW, "inputs": [{"name": "a.png", "uri": "gs://elsewhere/a.png"}]}
    message = refused(body).error.message
    assert "'elsewhere'" in message and "ALLOWED_INPUT_BUCKETS" in message
    allowed = parser(allowed_input_buckets=("elsewhere",)).parse(delivery(body))
    assert allowed.inputs[0].uri == "gs://elsewhere/a.png"
    assert parser(allowed_input_buckets=("*",)).parse(delivery(body)).inputs
    bad_uri = {"workflow": WORKFLOW, "inputs": [{"name": "a.png", "uri": "https://x/a.png"}]}
    assert "gs://" in refused(bad_uri).error.message


def test_pipeline_without_catalog_is_refused() -> None:
    assert "PIPELINES_DIR" in refused({"pipeline": "demo", "params": {}}).error.message
