"""Hostile messages of every class that once crashed the worker, mixed with good ones, through the
job loop on the memory adapters (``tests/memory/world.py``: wired as ``python -m worker run``
wires it; the adapters' behaviour is pinned to the emulators' by ``tests/contract``).

Every message gets exactly one ``result.json`` and one event; nothing is redelivered or
dead-lettered; the worker exits 0; the good jobs succeed.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from tests.fakes.scripted import workflow
from tests.memory.world import World
from worker.exitcodes import ExitCode
from worker.obs.logs import JsonFormatter

GOOD = workflow(sleep_s=0.05, outputs=[{"name": "ok.png", "bytes": 64}])


def raw(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


def hostile(cloud: World) -> dict[str, tuple[bytes | dict[str, Any], str, str]]:
    """name -> (message, where its result goes: a job id or "mid", expected error type)."""
    wf = json.dumps(GOOD)
    return {
        "deep": (raw("[" * 60_000 + "]" * 60_000), "mid", "invalid_job"),
        "digits": (raw('{"job_id": "d", "workflow": ' + "9" * 5000 + "}"), "mid", "invalid_job"),
        "overflow": (
            raw('{"pipeline": "demo-invert", "params": {"width": 1e999}}'),
            "mid",
            "invalid_job",
        ),
        "nan": (raw('{"workflow": ' + wf + ', "metadata": {"x": NaN}}'), "mid", "invalid_job"),
        "infinity": (
            raw('{"workflow": ' + wf + ', "metadata": {"x": -Infinity}}'),
            "mid",
            "invalid_job",
        ),
        "surrogate": (
            raw('{"workflow": ' + wf + ', "inputs": [{"name": "\\ud800.png", "data": "eA=="}]}'),
            "mid",
            "invalid_job",
        ),
        "not-utf8": (b'{"job_id": "\xff\xfe"}', "mid", "invalid_job"),
        "echo": ({"job_id": "x" * 3_000_000, "workflow": GOOD}, "mid", "invalid_job"),
        "folder-clash": (
            {
                "job_id": "h-clash",
                "workflow": GOOD,
                "inputs": [{"name": "a", "data": "eA=="}, {"name": "a/b", "data": "eA=="}],
            },
            "h-clash",
            "invalid_job",
        ),
        "long-name": (
            {"job_id": "h-long", "workflow": GOOD, "inputs": [{"name": "é" * 200, "data": "eA=="}]},
            "h-long",
            "invalid_job",
        ),
        "param-type": (
            {"job_id": "h-param", "pipeline": "demo-invert", "params": {"width": 3.5}},
            "h-param",
            "invalid_job",
        ),
        "cuda-text": (
            {"job_id": "CUDA-error.out-of-memory", "workflow": workflow(fail="execution_error")},
            "CUDA-error.out-of-memory",
            "execution_error",
        ),
        "collision": (
            {
                "job_id": "h-collide",
                "workflow": workflow(outputs=[{"name": "a/b.png"}, {"name": "a__b.png"}]),
            },
            "h-collide",
            "execution_error",
        ),
        "bad-input-uri": (
            {
                "job_id": "h-uri",
                "workflow": GOOD,
                "inputs": [{"name": "x.png", "uri": f"gs://{cloud.bucket}/" + "k" * 1100}],
            },
            "h-uri",
            "invalid_job",
        ),
    }


def test_hostile_messages_fail_alone_and_the_worker_never_exits_non_zero(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    cloud = world
    bad = hostile(cloud)
    ids = {name: cloud.publish(body) for name, (body, _, _) in bad.items()}
    good = {
        "g1": {"job_id": "g1", "workflow": GOOD},
        "g2": {"job_id": "g2", "workflow": GOOD, "output": {"prefix": "sub/path"}},
        # Outputs named like another job's result or like a marker: stored flattened.
        "g3": {
            "job_id": "g3",
            "workflow": workflow(outputs=[{"name": "K/result.json"}, {"name": ".attempt-1.json"}]),
        },
        # One of these two can't have its folder: P/J is job J's folder or a prefix level.
        "pj": {"job_id": "J", "workflow": GOOD, "output": {"prefix": "P"}},
        "pjk": {"job_id": "K", "workflow": GOOD, "output": {"prefix": "P/J"}},
    }
    ids |= {name: cloud.publish(body) for name, body in good.items()}

    assert cloud.run(IDLE_EXIT_S=2) == ExitCode.OK

    for name, (_, where, error_type) in bad.items():
        job_id = ids[name] if where == "mid" else where
        result = cloud.result(job_id)
        assert result is not None, name
        assert result["status"] == "failed" and result["error"]["type"] == error_type, (
            name,
            result["error"],
        )
        assert len(json.dumps(result)) < 20_000, name  # echoed values are cut
    for name in ("g1", "g3"):
        result = cloud.result(name)
        assert result is not None and result["status"] == "succeeded", (name, result)
    assert (cloud.result("g2", prefix="sub/path") or {}).get("status") == "succeeded"
    g3 = {o["name"] for o in (cloud.result("g3") or {})["outputs"]}
    assert g3 == {"K__result.json", "_.attempt-1.json"}
    assert not cloud.objects("results/K/")  # nothing forged in a folder of job K
    pj, pjk = cloud.result("J", prefix="P"), cloud.result("K", prefix="P/J")
    refused = [cloud.result(ids[n]) for n in ("pj", "pjk")]
    assert [r is not None for r in (pj, pjk)].count(True) == 1  # exactly one got its folder
    assert [r is not None for r in refused].count(True) == 1
    loser = next(r for r in refused if r is not None)
    assert loser["error"]["type"] == "invalid_job" and "not this job's" in loser["error"]["message"]

    messages = len(bad) + len(good)
    results = [n for n in cloud.objects("results/") if n.endswith("/result.json")]
    assert len(results) == messages  # exactly one result.json per message
    assert len(cloud.events()) == messages  # one each
    assert cloud.backlog() == 0 and cloud.subscription.dead_letters == []  # none redelivered
    # Each log line, as the worker's JSON formatter writes it, stays small.
    lines = [JsonFormatter().format(r) for r in caplog.records]
    assert lines and max(len(line.encode()) for line in lines) < 64 * 1024
