"""Guards around real ComfyUI (skipped without COMFYUI_DIR): text a job chooses never selects a
failure class, and memory bounds hold before anything executes."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import pytest

from tests.comfy import workflows
from tests.comfy.conftest import ComfyHarness
from worker.errors import ErrorType, JobFailed

pytestmark = pytest.mark.comfyui


def png_header(width: int, height: int) -> bytes:
    """A PNG that claims a size and holds no pixels: what a decompression bomb looks like."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


@pytest.mark.parametrize(
    "name",
    ["CUDA error: an illegal memory access.png", "out of memory.png", "cudnn_status_x.png"],
)
def test_a_job_chosen_name_never_selects_a_class(
    comfy: ComfyHarness, tmp_path: Path, name: str
) -> None:
    # LoadImage fails on bytes that are not an image; ComfyUI's message quotes the file name.
    with pytest.raises(JobFailed) as failed:
        comfy.run(f"text-{abs(hash(name))}", workflows.load_invert(name), tmp_path, {name: b"junk"})
    assert failed.value.error_type is ErrorType.EXECUTION_ERROR, failed.value.message


def test_a_batch_past_max_pixels_per_job_is_refused_before_it_runs(
    comfy: ComfyHarness, tmp_path: Path
) -> None:
    workflow = workflows.model_free(size=4096)
    workflow["1"]["inputs"]["batch_size"] = 4096  # within EmptyImage's own bounds: 68 Tpx
    with pytest.raises(JobFailed) as failed:
        comfy.run("batch", workflow, tmp_path)
    assert failed.value.error_type is ErrorType.INVALID_WORKFLOW
    assert "MAX_PIXELS_PER_JOB" in failed.value.message and failed.value.node_id == "1"


@pytest.mark.parametrize("side", [10_000, 20_000])  # PIL's warning zone, and past its error
def test_an_input_image_past_max_input_pixels_is_an_input_error(
    comfy: ComfyHarness, tmp_path: Path, side: int
) -> None:
    with pytest.raises(JobFailed) as failed:
        comfy.run(
            f"bomb{side}",
            workflows.load_invert("big.png"),
            tmp_path,
            {"big.png": png_header(side, side)},
        )
    assert failed.value.error_type is ErrorType.INPUT_ERROR
    assert "MAX_INPUT_PIXELS" in failed.value.message
