"""Every shipped pipeline against real ComfyUI (skipped without COMFYUI_DIR).

Each one passes ComfyUI's own ``validate_prompt``: the models they name are listed as present
(empty placeholder files; validation only checks names) and LoadImage's file is staged. Only the
model-free pipeline is executed; the others need real weights and are skipped with the reason.
"""

from __future__ import annotations

import importlib
import io
from pathlib import Path
from typing import Any

import pytest

from tests.cloud import Cloud
from tests.comfy.conftest import ComfyHarness, comfyui_dir_or_skip
from tests.producer.cli import worker_cli
from worker.errors import JobFailed
from worker.executor.comfy import run
from worker.message.pipelines import PipelineCatalog

pytestmark = pytest.mark.comfyui

ROOT = Path(__file__).resolve().parents[2]
CATALOG = PipelineCatalog.load(ROOT / "pipelines", seed=lambda: 12345)
MODEL_PARAMS = {"checkpoint": "checkpoints", "model": "upscale_models"}


def _png() -> bytes:
    Image = importlib.import_module("PIL.Image")
    buf = io.BytesIO()
    Image.new("RGB", (32, 32), (10, 20, 30)).save(buf, format="PNG")
    return buf.getvalue()


def _params(name: str) -> dict[str, Any]:
    params = CATALOG.get(name).params
    out: dict[str, Any] = {"prompt": "a lighthouse"} if "prompt" in params else {}
    for pname, param in params.items():  # a model the job would bring: a placeholder below
        if param.type == "model":
            out[pname] = f"gs://test-models/{pname}.safetensors"
    return out


def _placeholder_models(comfy: ComfyHarness, name: str) -> list[str]:
    """Create empty files for the models the pipeline names by default, and for those its
    model parameters would bring; return their names."""
    made = []
    for pname, param in CATALOG.get(name).params.items():
        folder = MODEL_PARAMS.get(pname)
        if folder is not None:
            path = comfy.models_dir / folder / str(param.default)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch()
            made.append(f"{folder}/{param.default}")
    for entry in CATALOG.render(name, _params(name)).models:
        path = comfy.models_dir / entry["folder"] / entry["name"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
        made.append(f"{entry['folder']}/{entry['name']}")
    return made


@pytest.mark.parametrize("name", CATALOG.names())
def test_every_pipeline_passes_comfyui_validation(
    comfy: ComfyHarness, tmp_path: Path, name: str
) -> None:
    _placeholder_models(comfy, name)
    rendered = CATALOG.render(name, _params(name))
    handle = comfy.executor.comfy
    assert handle is not None
    (tmp_path / "input.png").write_bytes(_png())
    previous = handle.folder_paths.get_input_directory()
    handle.folder_paths.set_input_directory(str(tmp_path))  # as the runner stages inputs
    try:
        to_execute = run.validate(handle, f"pipeline-{name}", rendered.workflow)
    finally:
        handle.folder_paths.set_input_directory(previous)
    save_nodes = [k for k, v in rendered.workflow.items() if v["class_type"] == "SaveImage"]
    assert to_execute == save_nodes


def test_a_bad_value_is_refused_by_comfyui_too(comfy: ComfyHarness, tmp_path: Path) -> None:
    # The pipeline's bounds are checked first; ComfyUI's validation stays the last word.
    rendered = CATALOG.render("sd15-txt2img", {"prompt": "x", "checkpoint": "absent.safetensors"})
    handle = comfy.executor.comfy
    assert handle is not None
    with pytest.raises(JobFailed) as info:
        run.validate(handle, "absent", rendered.workflow)
    assert "absent.safetensors" in info.value.message


def test_the_model_free_pipeline_runs(comfy: ComfyHarness, tmp_path: Path) -> None:
    rendered = CATALOG.render("demo-invert", {"width": 48, "height": 24, "color": 0x00FF00})
    result = comfy.run("demo", rendered.workflow, tmp_path)
    [output] = result.outputs
    Image = importlib.import_module("PIL.Image")
    with Image.open(output.path) as image:
        assert image.size == (48, 24)
        assert image.convert("RGB").getpixel((0, 0)) == (255, 0, 255)  # green, inverted


@pytest.mark.parametrize("name", [n for n in CATALOG.names() if n != "demo-invert"])
def test_model_pipelines_need_real_models(name: str) -> None:
    comfyui_dir_or_skip()
    models = [
        f"models/{MODEL_PARAMS[p]}/{param.default}"
        for p, param in CATALOG.get(name).params.items()
        if p in MODEL_PARAMS
    ]
    pytest.skip(
        f"{name} executes only with real weights ({', '.join(models)}); validation is covered above"
    )


def test_submit_wait_with_a_real_comfyui_worker(cloud: Cloud, tmp_path: Path) -> None:
    comfyui_dir = comfyui_dir_or_skip()
    worker = cloud.spawn_worker(
        tmp_path / "worker.log",
        EXECUTOR="worker.executor.comfy:build_executor",
        COMFYUI_DIR=comfyui_dir,
        COMFYUI_DEVICE="cpu",
        IDLE_EXIT_S=120,
    )
    try:
        done = worker_cli(
            cloud,
            "submit",
            "--pipeline",
            "demo-invert",
            "-p",
            "color=0x00ff00",
            "-p",
            "width=40",
            "--job-id",
            "real-demo",
            "--wait",
            "--timeout",
            "120",
            "--download",
            tmp_path / "out",
            timeout_s=180,
        )
    finally:
        worker.terminate()
        worker.wait(30)
    assert done.returncode == 0, done.stderr + (tmp_path / "worker.log").read_text()[-3000:]
    [png] = (tmp_path / "out" / "real-demo").glob("*.png")
    Image = importlib.import_module("PIL.Image")
    with Image.open(png) as image:
        assert image.size == (40, 512) and image.getpixel((0, 0))[:3] == (255, 0, 255)
    result = cloud.result("real-demo")
    assert result is not None and result["pipeline"] == "demo-invert"
    assert result["params"] == {"width": 40, "height": 512, "color": 0x00FF00, "batch_size": 1}
