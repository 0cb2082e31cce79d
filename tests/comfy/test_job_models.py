"""Jobs' own models in real ComfyUI (skipped without COMFYUI_DIR): a gs:// LoRA and an https
LoRA, fetched by the worker's fetcher from fake-gcs-server and a local HTTPS host, used by a
LoraLoader on the random-weight SD1.5 checkpoint.

Each job sees its own models only; one name standing for other bytes resets ComfyUI's caches,
so the loader reads the new file instead of reusing an output cached for the old one.
"""

from __future__ import annotations

import importlib
import io
import uuid
from pathlib import Path
from typing import Any

import pytest
from google.cloud import storage

from tests.comfy import sd15, workflows
from tests.comfy.conftest import ComfyHarness
from tests.modelhost import Certs, File, ModelHost
from tests.models.helpers import NEVER, fetcher, sha, spec
from worker.errors import ErrorType, JobFailed
from worker.executor.base import ExecRequest, ExecResult
from worker.local.emulators import Emulator
from worker.message.job import ModelFile

pytestmark = [pytest.mark.comfyui, pytest.mark.slow]
LORA = "style.safetensors"


def tiny_lora(seed: int) -> bytes:
    """A rank-4 LoRA on the text encoder's first MLP layer: small, and it changes the image."""
    torch = importlib.import_module("torch")
    safetensors_torch = importlib.import_module("safetensors.torch")
    g = torch.Generator().manual_seed(seed)
    key = "lora_te_text_model_encoder_layers_0_mlp_fc1"
    tensors = {
        f"{key}.lora_up.weight": torch.randn(3072, 4, generator=g).half(),
        f"{key}.lora_down.weight": torch.randn(4, 768, generator=g).half(),
        f"{key}.alpha": torch.tensor(4.0).half(),
    }
    data: bytes = safetensors_torch.save(tensors)
    return data


def with_lora(ckpt: str) -> dict[str, Any]:
    wf = workflows.sd15(ckpt, seed=5)
    wf["10"] = {
        "class_type": "LoraLoader",
        "inputs": {
            "model": ["4", 0],
            "clip": ["4", 1],
            "lora_name": LORA,
            "strength_model": 1.0,
            "strength_clip": 1.0,
        },
    }
    wf["3"]["inputs"]["model"] = ["10", 0]
    for node in ("6", "7"):
        wf[node]["inputs"]["clip"] = ["10", 1]
    return wf


@pytest.fixture(scope="module")
def ckpt(comfy: ComfyHarness) -> str:
    path = sd15.ensure(comfy.comfyui_dir)
    link = comfy.models_dir / "checkpoints" / path.name
    if not link.exists():
        link.symlink_to(path)
    return path.name


def run(
    comfy: ComfyHarness, job_id: str, wf: dict[str, Any], base: Path, models: Any
) -> ExecResult:
    (base / job_id / "in").mkdir(parents=True)
    return comfy.executor.execute(
        ExecRequest(job_id, wf, base / job_id / "in", base / job_id / "out", models=models)
    )


def test_gs_and_https_loras_in_a_real_job(
    comfy: ComfyHarness,
    ckpt: str,
    tmp_path: Path,
    gcs_emulator: Emulator,
    model_host: ModelHost,
    model_certs: Certs,
) -> None:
    first, second = tiny_lora(1), tiny_lora(2)
    bucket = storage.Client(project="test-project").create_bucket(f"m-{uuid.uuid4().hex[:10]}")
    bucket.blob("loras/one.safetensors").upload_from_string(first)
    model_host.files["/two.safetensors"] = File(second)
    f = fetcher(tmp_path / "cache", model_certs, (model_host.netloc,))
    from_gcs = f.fetch(
        (spec(f"gs://{bucket.name}/loras/one.safetensors", name=LORA, sha256=None),), NEVER
    )
    from_https = f.fetch((spec(model_host.url("/two.safetensors"), second, name=LORA),), NEVER)
    assert from_gcs.files[0].sha256 == sha(first) and from_https.files[0].sha256 == sha(second)

    wf = with_lora(ckpt)
    one = run(comfy, "lora-1", wf, tmp_path, from_gcs.files)
    two = run(comfy, "lora-2", wf, tmp_path, from_https.files)  # same name, other bytes
    three = run(comfy, "lora-3", wf, tmp_path, from_https.files)  # the same again
    for result in (one, two, three):
        assert [o.name for o in result.outputs] == ["sd_00001_.png"]
    assert "10" in one.node_timings and "10" in two.node_timings  # loaded, then loaded again
    assert "10" in three.info["cached_nodes"]  # unchanged: ComfyUI's cache serves it
    pixels = [_pixels(r) for r in (one, two, three)]
    assert pixels[0] != pixels[1] and pixels[1] == pixels[2]

    # A job that brings no model can't use one another job brought.
    with pytest.raises(JobFailed) as info:
        run(comfy, "lora-4", wf, tmp_path, ())
    assert info.value.error_type is ErrorType.MISSING_MODEL and LORA in info.value.message
    # An unknown folder or an extension ComfyUI would not list: the job's own error.
    bad = (ModelFile("no_such_folder", "x.safetensors", from_gcs.files[0].path, "0" * 64),)
    with pytest.raises(JobFailed, match="no model folder 'no_such_folder'"):
        run(comfy, "lora-5", workflows.model_free(), tmp_path, bad)
    from_gcs.release()
    from_https.release()


def _pixels(result: ExecResult) -> bytes:
    image = importlib.import_module("PIL.Image")
    with image.open(io.BytesIO(result.outputs[0].path.read_bytes())) as im:
        data: bytes = im.tobytes()
    return data
