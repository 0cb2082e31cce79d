"""``python -m worker check``: one exit code per cause, against the emulators (no ComfyUI)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from tests.cloud import Cloud
from worker.cli import build_parser
from worker.commands.check import CheckCode


def check(
    cloud: Cloud, capsys: pytest.CaptureFixture[str], *argv: str, **env: Any
) -> tuple[int, list[dict[str, Any]]]:
    args = build_parser().parse_args(["check", *argv])
    code = int(args.handler(args, cloud.settings(**env)))
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    return code, lines


def test_reachable_services_pass(cloud: Cloud, capsys: pytest.CaptureFixture[str]) -> None:
    code, lines = check(cloud, capsys, "--skip", "comfyui,gpu,models")
    assert code == CheckCode.OK
    assert lines[0]["check"] == "services" and lines[0]["state"] == "ok"
    assert len(lines[0]["detail"]) == 3  # subscription, results topic, bucket


def test_what_is_not_configured_is_said_so_not_ok(
    cloud: Cloud, capsys: pytest.CaptureFixture[str]
) -> None:
    unset = {"JOBS_SUBSCRIPTION": "", "RESULTS_TOPIC": "", "OUTPUT_URI": ""}
    code, lines = check(cloud, capsys, "--skip", "comfyui,gpu", **unset)
    assert code == CheckCode.OK  # nothing failed: the exit code keeps its meaning
    states = {line["check"]: (line["state"], line["detail"]) for line in lines}
    assert states["models"] == ("not configured", "neither MODELS_DIR nor MODEL_MANIFEST is set")
    assert states["services"][0] == "not configured"
    assert "JOBS_SUBSCRIPTION, RESULTS_TOPIC and OUTPUT_URI" in states["services"][1]

    code, lines = check(cloud, capsys, "--skip", "comfyui,gpu,models", RESULTS_TOPIC="")
    assert code == CheckCode.OK and lines[0]["state"] == "ok"
    assert lines[0]["detail"][-1] == "not configured: RESULTS_TOPIC"


def test_no_gpu_to_check_is_skipped_not_ok(
    cloud: Cloud, capsys: pytest.CaptureFixture[str]
) -> None:
    from worker.executor.comfy import gpu

    code, lines = check(cloud, capsys, "--skip", "services,models,comfyui", COMFYUI_DEVICE="cpu")
    assert code == CheckCode.OK and lines[0]["state"] == "skipped"
    assert lines[0]["detail"] == "COMFYUI_DEVICE=cpu"
    if gpu.nvidia_visible():
        return
    # Nothing on this host to check: skipped, whether or not torch is installed.
    code, lines = check(cloud, capsys, "--skip", "services,models,comfyui")
    assert code == CheckCode.OK and lines[0]["state"] == "skipped"
    assert "no NVIDIA device visible" in lines[0]["detail"]


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        (
            "JOBS_SUBSCRIPTION",
            "projects/test-project/subscriptions/absent",
            CheckCode.SUBSCRIPTION_UNREACHABLE,
        ),
        ("RESULTS_TOPIC", "projects/test-project/topics/absent", CheckCode.TOPIC_UNREACHABLE),
        ("OUTPUT_URI", "gs://absent-bucket-xyz/out", CheckCode.BUCKET_UNREACHABLE),
    ],
)
def test_each_missing_service_has_its_code(
    cloud: Cloud, capsys: pytest.CaptureFixture[str], variable: str, value: str, expected: CheckCode
) -> None:
    code, lines = check(cloud, capsys, "--skip", "comfyui,gpu,models", **{variable: value})
    assert code == expected
    assert lines[0]["cause"] == expected.name.lower() and "does not exist" in lines[0]["detail"]


def test_comfyui_dir_unset_or_wrong(
    cloud: Cloud, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, lines = check(cloud, capsys, "--skip", "services,models,gpu", COMFYUI_DIR="")
    assert code == CheckCode.COMFYUI_MISSING and "COMFYUI_DIR is not set" in lines[0]["detail"]
    code, lines = check(cloud, capsys, "--skip", "services,models,gpu", COMFYUI_DIR=str(tmp_path))
    assert code == CheckCode.COMFYUI_MISSING and "not a ComfyUI checkout" in lines[0]["detail"]
    assert [line["check"] for line in lines] == ["comfyui_dir"]  # no import attempted


def test_gpu_required_but_absent(cloud: Cloud, capsys: pytest.CaptureFixture[str]) -> None:
    from worker.executor.comfy import gpu

    if gpu.nvidia_visible():
        pytest.skip("this machine has an NVIDIA device")
    code, _ = check(cloud, capsys, "--skip", "services,models,comfyui", "--require-gpu")
    assert code == CheckCode.GPU_NOT_VISIBLE


def test_manifest_models_found_in_gcs_or_reported(
    cloud: Cloud, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    data = b"model bytes"
    bucket = cloud.gcs.bucket(cloud.bucket)
    bucket.blob("models/m.safetensors").upload_from_string(data)
    entry = {
        "source": f"gs://{cloud.bucket}/models/m.safetensors",
        "folder": "checkpoints",
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
    }
    manifest = tmp_path / "models.json"
    manifest.write_text(json.dumps([entry]))
    code, lines = check(
        cloud, capsys, "--skip", "services,comfyui,gpu", MODEL_MANIFEST=str(manifest)
    )
    assert code == CheckCode.OK and "1 to fetch" in lines[0]["detail"]

    manifest.write_text(json.dumps([entry | {"source": f"gs://{cloud.bucket}/models/none.pt"}]))
    code, lines = check(
        cloud, capsys, "--skip", "services,comfyui,gpu", MODEL_MANIFEST=str(manifest)
    )
    assert code == CheckCode.MODELS_MISSING and "none.pt" in lines[0]["detail"]
    code, _ = check(
        cloud, capsys, "--skip", "services,comfyui,gpu", MODELS_DIR=str(tmp_path / "absent")
    )
    assert code == CheckCode.MODELS_MISSING
