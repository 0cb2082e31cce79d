"""End to end: ``python -m worker run`` with embedded ComfyUI and the emulators (skipped without
COMFYUI_DIR): a model-free job and an invalid one, their outputs, result.json and events."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.cloud import Cloud
from tests.comfy import workflows
from tests.comfy.conftest import comfyui_dir_or_skip
from worker.exitcodes import ExitCode

pytestmark = [
    pytest.mark.comfyui,
    # Decided before the session's emulators start (the fixture below gives the full reason).
    pytest.mark.skipif(not os.environ.get("COMFYUI_DIR"), reason="COMFYUI_DIR is not set"),
]


@pytest.fixture
def comfyui_dir() -> Path:
    return comfyui_dir_or_skip()  # before the emulators start


def test_model_free_job_through_the_worker(comfyui_dir: Path, cloud: Cloud, tmp_path: Path) -> None:
    cloud.publish({"job_id": "mf-1", "workflow": workflows.model_free(color=0x404040)})
    bad = workflows.model_free()
    bad["2"]["class_type"] = "NotANode"
    cloud.publish({"job_id": "bad-1", "workflow": bad})
    log = tmp_path / "worker.log"

    worker = cloud.spawn_worker(
        log,
        EXECUTOR="worker.executor.comfy:build_executor",
        COMFYUI_DIR=str(comfyui_dir),
        IDLE_EXIT_S="3",
    )
    code = worker.wait(timeout=240)
    assert code == ExitCode.OK, log.read_text()[-4000:]

    result = cloud.result("mf-1")
    assert result is not None and result["status"] == "succeeded", result
    [output] = result["outputs"]
    assert output["uri"] == f"{cloud.output_uri}/mf-1/ComfyUI_00001_.png"
    assert (output["content_type"], output["kind"], output["node_id"]) == (
        "image/png",
        "image",
        "3",
    )
    blob = cloud.objects("results/mf-1/")["results/mf-1/ComfyUI_00001_.png"]
    assert blob.size == output["size"] > 0 and blob.content_type == "image/png"
    failed = cloud.result("bad-1")
    assert failed is not None and failed["status"] == "failed"
    assert (
        failed["error"]["type"] == "invalid_workflow" and "NotANode" in failed["error"]["message"]
    )
    events = {e["job_id"]: e for e in cloud.events(2)}
    assert events["mf-1"]["status"] == "succeeded" and events["mf-1"]["outputs"] == [output]
    assert events["bad-1"]["_attributes"]["status"] == "failed"
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    assert any(line.get("message") == "comfyui.booted" for line in lines)
