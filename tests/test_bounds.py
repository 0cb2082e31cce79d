"""Bounded, strict output whatever a job sent: result documents, log lines, work directories,
and the settings that must agree with the deployment."""

from __future__ import annotations

import io
import json
import logging
import re
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.memstore import MemoryStore
from tests.fakes.publisher import RecordingPublisher
from worker.config import Identity, Settings
from worker.errors import ErrorType, JobFailed
from worker.loop import workdir
from worker.loop.ledger import Ledger, Recorded
from worker.message import jsonsafe
from worker.message.job import StoredOutput
from worker.obs import logs
from worker.record import result as results
from worker.record.result import JobContext

REPO = Path(__file__).resolve().parent.parent
CTX = JobContext("j", "m", 2, "gs://bkt/out/j", metadata={"k": "v"})


def doc(error: JobFailed | None = None, outputs: int = 0, **ctx: Any) -> dict[str, Any]:
    stored = [
        StoredOutput(
            f"gs://bkt/out/j/{i:05d}-{'n' * 200}.png", "n", "image/png", 1, None, None, "image", "9"
        )
        for i in range(outputs)
    ]
    return results.build(
        JobContext(**{**CTX.__dict__, **ctx}),
        status="failed" if error else "succeeded",
        outputs=stored,
        error=error,
        timings=results.Timings(nodes={"1": float("nan")}),
        identity=Identity(),
    )


def test_results_are_strict_utf8_json_under_the_cap() -> None:
    huge = JobFailed(
        ErrorType.EXECUTION_ERROR,
        "x" * 5_000_000 + "\ud800",
        node_id="n" * 10_000,
        details={"values": ["v" * 100_000] * 1000, "deep": {"a": {"b": {"c": {"d": {"e": {}}}}}}},
    )
    data = results.encode(doc(huge, metadata={"m": "é" * 300_000}))
    assert len(data) <= results.MAX_RESULT_BYTES
    parsed = jsonsafe.loads(data.decode("utf-8"))  # strict: valid UTF-8, no NaN
    assert parsed["timings"]["nodes"]["1"] is None  # NaN became null
    assert len(parsed["error"]["message"]) < 5000 and len(parsed["error"]["node_id"]) < 300
    assert "é" in data.decode("utf-8")  # not ASCII-escaped


def test_a_result_whose_outputs_alone_are_over_the_cap_is_refused() -> None:
    with pytest.raises(results.ResultTooLarge, match="outputs"):
        results.encode(doc(outputs=5000))


def test_log_lines_stay_under_64_kb_and_valid_utf8() -> None:
    stream = io.StringIO()
    logs.setup("INFO", stream=stream)
    log = logging.getLogger("bounds-test")
    logs.event(log, "m" * 1_000_000, error="e" * 1_000_000, value={"k": ["v" * 50_000] * 50})
    logs.event(log, "surrogate \ud800 here", name="\udc80")
    try:
        raise ValueError("t" * 1_000_000)
    except ValueError:
        logs.event(log, "with a traceback", logging.ERROR, exc_info=True)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 3
    for line in lines:
        assert len(line.encode("utf-8")) < 64 * 1024
        json.loads(line)
    logging.getLogger().handlers.clear()


def test_a_lost_race_re_publishes_only_on_a_redelivery() -> None:
    store, publisher = MemoryStore(), RecordingPublisher()
    ledger = Ledger(store, publisher)
    winner = b'{"job_id": "j", "status": "succeeded"}'
    store.put_bytes_once("gs://bkt/out/j/result.json", winner, "application/json")
    ours = b'{"job_id": "j", "status": "failed"}'
    attributes = {"job_id": "j", "status": "failed"}
    assert ledger.record(CTX, ours, attributes, redelivered=False) is Recorded.LOST
    assert publisher.published == []  # a concurrent first delivery announces its own
    assert ledger.record(CTX, ours, attributes, redelivered=True) is Recorded.LOST_REPUBLISHED
    assert publisher.published == [(winner, {"job_id": "j", "status": "succeeded"})]


def test_each_process_gets_its_own_work_directory(tmp_path: Path) -> None:
    first, second = workdir.claim(tmp_path), workdir.claim(tmp_path)
    assert first.path != second.path
    (first.path / "leftover.png").write_bytes(b"x")
    first.release()
    again = workdir.claim(tmp_path)  # a dead owner's slot is reused, emptied
    assert again.path == first.path and not (again.path / "leftover.png").exists()
    for slot in (second, again):
        slot.release()


def test_settings_put_a_process_in_its_slot_and_keep_the_model_cache_shared(
    tmp_path: Path,
) -> None:
    settings = Settings(work_dir=tmp_path).in_slot(tmp_path / "worker-3")
    assert settings.work_dir == tmp_path / "worker-3"
    assert settings.comfy.model_cache_dir == tmp_path / "models"


def test_max_delivery_attempts_matches_the_subscription_in_infra() -> None:
    terraform = (REPO / "infra" / "pubsub.tf").read_text()
    configured = re.findall(r"max_delivery_attempts\s*=\s*(\d+)", terraform)
    assert configured and {int(n) for n in configured} == {Settings().max_delivery_attempts}
    jobs = (REPO / "jobs.yaml").read_text()
    match = re.search(r"name: MAX_DELIVERY_ATTEMPTS\s+value: \"?(\d+)", jobs)
    assert match is None or int(match.group(1)) == Settings().max_delivery_attempts
