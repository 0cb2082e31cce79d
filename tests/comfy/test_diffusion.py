"""A real diffusion workflow on a random-weight SD1.5 checkpoint (skipped without COMFYUI_DIR).

The checkpoint is generated once into COMFY_TEST_CACHE (~2 GB, under a minute); each job takes a
few seconds on CPU.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.comfy import sd15, workflows
from tests.comfy.conftest import ComfyHarness
from worker.errors import Interrupted
from worker.executor.base import Progress

pytestmark = [pytest.mark.comfyui, pytest.mark.slow]


@pytest.fixture(scope="module")
def ckpt(comfy: ComfyHarness) -> str:
    path = sd15.ensure(comfy.comfyui_dir)
    link = comfy.models_dir / "checkpoints" / path.name
    if not link.exists():
        link.symlink_to(path)
    return path.name


def _loaded_models() -> list[int]:
    import comfy.model_management as mm

    return [id(m.model) for m in mm.current_loaded_models]


def test_second_job_reuses_the_loaded_model(comfy: ComfyHarness, ckpt: str, tmp_path: Path) -> None:
    first = comfy.run("sd-1", workflows.sd15(ckpt, seed=1), tmp_path)
    loaded = _loaded_models()
    second = comfy.run("sd-2", workflows.sd15(ckpt, seed=2), tmp_path)

    for result in (first, second):
        assert [(o.name, o.kind, o.node_id) for o in result.outputs] == [
            ("sd_00001_.png", "image", "9")
        ]
        assert result.outputs[0].path.stat().st_size > 0
    assert "4" in first.node_timings  # the checkpoint was loaded by the first job...
    assert "4" in second.info["cached_nodes"] and "4" not in second.node_timings  # ...only
    assert loaded and _loaded_models() == loaded  # the same model objects stay loaded
    assert {"3", "8", "9"} <= set(second.node_timings)  # the new seed re-sampled and decoded
    steps = [p for p in comfy.progress if p.node_id == "3" and p.total == 2]
    assert [p.value for p in steps] == [1.0, 2.0]  # sampler steps reached the progress sink


def test_interrupt_between_sampler_steps(comfy: ComfyHarness, ckpt: str, tmp_path: Path) -> None:
    def stop_after_first_step(p: Progress) -> None:
        if p.node_id == "3" and p.value == 1.0 and p.total > 1:
            comfy.executor.interrupt()

    with pytest.raises(Interrupted, match="node 3"):
        comfy.run(
            "sd-stop",
            workflows.sd15(ckpt, seed=3, steps=4),
            tmp_path,
            progress=stop_after_first_step,
        )
