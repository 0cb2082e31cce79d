"""The embedded executor against real ComfyUI (skipped without COMFYUI_DIR): model-free runs,
every failure class, interrupts, isolation between jobs and every output kind."""

from __future__ import annotations

import gc
import importlib
import io
from pathlib import Path

import pytest

from tests.comfy import workflows
from tests.comfy.conftest import DUMMY_MODEL, ComfyHarness
from worker.errors import ErrorType, Interrupted, JobFailed
from worker.executor.base import Progress

pytestmark = pytest.mark.comfyui


def _png(width: int, color: tuple[int, int, int]) -> bytes:
    Image = importlib.import_module("PIL.Image")

    buf = io.BytesIO()
    Image.new("RGB", (width, width), color).save(buf, format="PNG")
    return buf.getvalue()


def _pixel(path: Path) -> tuple[int, ...]:
    Image = importlib.import_module("PIL.Image")

    with Image.open(path) as im:
        return tuple(im.convert("RGB").getpixel((0, 0)))


def test_garbage_collection_is_back_on_after_boot(comfy: ComfyHarness) -> None:
    # The boot runs with it off (1.2-1.6 s of full collections saved); jobs run with it on.
    assert comfy.executor.comfy is not None
    assert gc.isenabled()


def test_model_free_workflow_saves_the_inverted_image(comfy: ComfyHarness, tmp_path: Path) -> None:
    result = comfy.run("mf", workflows.model_free(color=0), tmp_path)

    assert [(o.name, o.kind, o.node_id, o.content_type) for o in result.outputs] == [
        ("ComfyUI_00001_.png", "image", "3", "image/png")
    ]
    out = result.outputs[0].path
    assert out.parent == tmp_path / "mf" / "out"
    assert _pixel(out) == (255, 255, 255)  # black, inverted
    assert set(result.node_timings) <= {"1", "2", "3"} and "3" in result.node_timings
    assert all(p.job_id == "mf" for p in comfy.progress) and comfy.progress


def test_staged_input_is_what_loaders_read(comfy: ComfyHarness, tmp_path: Path) -> None:
    result = comfy.run(
        "load",
        workflows.load_invert("red.png"),
        tmp_path,
        inputs={"red.png": _png(16, (255, 0, 0))},
    )

    assert _pixel(result.outputs[0].path) == (0, 255, 255)


def test_png_metadata_is_off_by_default(comfy: ComfyHarness, tmp_path: Path) -> None:
    Image = importlib.import_module("PIL.Image")

    result = comfy.run("meta", workflows.model_free(color=3), tmp_path)

    with Image.open(result.outputs[0].path) as im:
        assert "prompt" not in im.info and "workflow" not in im.info


def test_validation_error_names_node_input_and_reason(comfy: ComfyHarness, tmp_path: Path) -> None:
    workflow = workflows.model_free()
    workflow["1"]["inputs"]["width"] = 10**9

    with pytest.raises(JobFailed) as caught:
        comfy.run("bad", workflow, tmp_path)

    err = caught.value
    assert err.error_type is ErrorType.INVALID_WORKFLOW and err.node_id == "1"
    assert 'node 1 (EmptyImage), input "width"' in err.message
    assert "bigger than max" in err.message
    assert not (tmp_path / "bad" / "out").exists() or not any((tmp_path / "bad" / "out").iterdir())


def test_unknown_node_class(comfy: ComfyHarness, tmp_path: Path) -> None:
    workflow = workflows.model_free()
    workflow["2"]["class_type"] = "NoSuchNodeAnywhere"

    with pytest.raises(JobFailed) as caught:
        comfy.run("unknown", workflow, tmp_path)

    assert caught.value.error_type is ErrorType.INVALID_WORKFLOW
    assert caught.value.node_id == "2"
    assert "NoSuchNodeAnywhere" in caught.value.message


def test_missing_model_lists_the_available_ones(comfy: ComfyHarness, tmp_path: Path) -> None:
    workflow = workflows.sd15("not-installed.safetensors")

    with pytest.raises(JobFailed) as caught:
        comfy.run("nomodel", workflow, tmp_path)

    err = caught.value
    assert err.error_type is ErrorType.MISSING_MODEL and err.node_id == "4"
    assert (
        '"not-installed.safetensors" is not installed in models folder "checkpoints"' in err.message
    )
    assert DUMMY_MODEL in err.message
    missing = err.details["missing_models"][0]
    assert missing["folder"] == "checkpoints" and DUMMY_MODEL in missing["available"]


def test_node_exception_is_the_jobs_fault(comfy: ComfyHarness, tmp_path: Path) -> None:
    with pytest.raises(JobFailed) as caught:
        comfy.run(
            "corrupt",
            workflows.load_invert("broken.png"),
            tmp_path,
            inputs={"broken.png": b"this is not a PNG"},
        )

    err = caught.value
    assert err.error_type is ErrorType.EXECUTION_ERROR and err.node_id == "1"
    assert err.message.startswith("node 1 (LoadImage) raised ")
    assert "UnidentifiedImageError" in err.details["exception_type"]
    assert err.details["traceback"]


def test_interrupt_mid_run_ends_as_interrupted(comfy: ComfyHarness, tmp_path: Path) -> None:
    seen: list[str | None] = []

    def stop_at_node_2(p: Progress) -> None:
        seen.append(p.node_id)
        if p.node_id == "2":
            comfy.executor.interrupt()  # from inside the run, as the runner's thread would

    with pytest.raises(Interrupted):
        comfy.run("stopped", workflows.model_free(color=7), tmp_path, progress=stop_at_node_2)

    assert seen[:2] == ["1", "2"] and "3" not in seen
    assert not (tmp_path / "stopped" / "out").exists() or not any(
        (tmp_path / "stopped" / "out").iterdir()
    )
    # The flag does not leak into the next job.
    assert comfy.run("after", workflows.model_free(color=7), tmp_path).outputs


def test_interrupt_outside_a_run_is_ignored(comfy: ComfyHarness, tmp_path: Path) -> None:
    comfy.executor.interrupt()

    assert comfy.run("later", workflows.model_free(color=9), tmp_path).outputs


def test_back_to_back_jobs_have_isolated_outputs(comfy: ComfyHarness, tmp_path: Path) -> None:
    same = workflows.model_free(color=0x282828)
    first = comfy.run("a", same, tmp_path)
    second = comfy.run("b", same, tmp_path)  # identical: upstream nodes cached, SaveImage not
    third = comfy.run("c", workflows.model_free(color=0xC8C8C8), tmp_path)

    assert (
        [o.name for o in first.outputs]
        == [o.name for o in second.outputs]
        == ["ComfyUI_00001_.png"]
    )
    assert "1" in second.info["cached_nodes"] and "3" not in second.info["cached_nodes"]
    assert [p.name for p in (tmp_path / "a" / "out").iterdir()] == ["ComfyUI_00001_.png"]
    assert [p.name for p in (tmp_path / "b" / "out").iterdir()] == ["ComfyUI_00001_.png"]
    assert _pixel(first.outputs[0].path) == _pixel(second.outputs[0].path) == (215, 215, 215)
    assert all(abs(v - 55) <= 1 for v in _pixel(third.outputs[0].path))  # 1 - 200/255


def test_every_output_kind(comfy: ComfyHarness, tmp_path: Path) -> None:
    result = comfy.run("kinds", workflows.every_kind(), tmp_path)

    by_node = {o.node_id: o for o in result.outputs}
    assert by_node["2"].kind == "text" and by_node["2"].name == "text/2_1.txt"
    assert by_node["2"].path.read_text() == "hello from ComfyUI"
    assert by_node["3"].kind == "text" and by_node["3"].name.startswith("notes/n_")
    assert by_node["3"].path.read_text() == "hello from ComfyUI"
    assert by_node["5"].kind == "audio" and by_node["5"].content_type == "audio/flac"
    assert by_node["5"].path.stat().st_size > 0
    assert by_node["7"].kind == "image" and by_node["7"].content_type == "image/webp"
    assert len(result.outputs) == 4  # SaveText's text is not duplicated as a second file
    for output in result.outputs:
        assert output.path == tmp_path / "kinds" / "out" / output.name


def test_malformed_workflow_is_refused_before_comfyui(comfy: ComfyHarness, tmp_path: Path) -> None:
    workflow = workflows.model_free()
    workflow["2"]["inputs"]["image"] = ["99", 0]

    with pytest.raises(JobFailed) as caught:
        comfy.run("links", workflow, tmp_path)

    assert caught.value.error_type is ErrorType.INVALID_WORKFLOW
    assert "links to node '99'" in caught.value.message
