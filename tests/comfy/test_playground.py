"""The README's playground walk-through with real ComfyUI: ``scripts/local-run --keep``, then a
pipeline job from a second shell, its output downloaded (skipped without COMFYUI_DIR)."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from tests.comfy.conftest import comfyui_dir_or_skip
from tests.playground import playground

pytestmark = pytest.mark.comfyui


def test_a_pipeline_job_from_a_second_shell(tmp_path: Path) -> None:
    comfyui_dir = comfyui_dir_or_skip()
    with playground(tmp_path, comfyui_dir, ready_s=240, COMFYUI_DEVICE="cpu") as play:
        done = play.shell(
            "submit",
            *("--pipeline", "demo-invert", "-p", "width=320", "--wait", "--timeout", "120"),
            *("--download", tmp_path / "out"),
            timeout_s=180,
        )
        assert done.returncode == 0, done.stderr + play.text()
        job_id, outcome = done.stdout.splitlines()
        folder = f"gs://local-outputs/outputs/{job_id}/"
        assert outcome.startswith(f"{job_id} succeeded {folder}") and outcome.endswith(".png")
    [png] = (tmp_path / "out" / job_id).glob("*.png")
    width, height = struct.unpack(">II", png.read_bytes()[16:24])  # the IHDR chunk
    assert (width, height) == (320, 512)
