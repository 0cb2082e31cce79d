"""A full-size SD1.5-architecture checkpoint with random weights, for tests and the benchmark.

No download: the shapes come from ComfyUI's own model classes (UNet, VAE, CLIP-L text encoder),
built on the ``meta`` device, and every tensor is filled from a seeded generator (norm weights 1,
biases 0, the rest N(0, 0.02)) and stored as fp16 safetensors under the original checkpoint's
key names (``model.diffusion_model.``, ``first_stage_model.``, ``cond_stage_model.transformer.``),
so ComfyUI detects it as SD1.5. About 1,066 M parameters, 2 GB, under a minute on 2 cores.

It runs in a child process (``python -m tests.comfy.sd15 OUT``): importing ComfyUI's model code
reads ComfyUI's arguments, which must stay untouched until the executor under test boots.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path

NAME = "random-sd15-v1.safetensors"  # bump the version when the recipe changes
SEED = 1234
UNET = {
    "use_checkpoint": False,
    "image_size": 32,
    "out_channels": 4,
    "use_spatial_transformer": True,
    "legacy": False,
    "adm_in_channels": None,
    "in_channels": 4,
    "model_channels": 320,
    "num_res_blocks": [2, 2, 2, 2],
    "transformer_depth": [1, 1, 1, 1, 1, 1, 0, 0],
    "channel_mult": [1, 2, 4, 4],
    "transformer_depth_middle": 1,
    "use_linear_in_transformer": False,
    "context_dim": 768,
    "num_heads": 8,
    "transformer_depth_output": [1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0],
    "use_temporal_attention": False,
    "use_temporal_resblock": False,
}
VAE = {
    "double_z": True,
    "z_channels": 4,
    "resolution": 256,
    "in_channels": 3,
    "out_ch": 3,
    "ch": 128,
    "ch_mult": [1, 2, 4, 4],
    "num_res_blocks": 2,
    "attn_resolutions": [],
    "dropout": 0.0,
}


def cache_dir() -> Path:
    base = os.environ.get("COMFY_TEST_CACHE") or str(Path.home() / ".cache" / "comfy-batch-worker")
    return Path(base)


def ensure(comfyui_dir: Path, directory: Path | None = None) -> Path:
    """The checkpoint's path, generating it (in a child process) the first time."""
    path = (directory or cache_dir()) / "checkpoints" / NAME
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    repo = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(repo), str(comfyui_dir)])}
    subprocess.run(
        [sys.executable, "-m", "tests.comfy.sd15", str(path)],
        check=True,
        env=env,
        cwd=repo,
        timeout=900,
    )
    return path


def _shapes() -> dict[str, tuple[tuple[int, ...], str]]:
    """Key -> (shape, ComfyUI module path) for the whole checkpoint."""
    import json

    import torch
    from comfy.cli_args import args

    args.cpu = True
    import comfy.clip_model
    import comfy.ops
    import comfy.sd1_clip
    from comfy.ldm.models.autoencoder import AutoencoderKL
    from comfy.ldm.modules.diffusionmodules.openaimodel import UNetModel

    ops = comfy.ops.disable_weight_init
    meta = torch.device("meta")
    unet = UNetModel(**UNET, dtype=torch.float16, device=meta, operations=ops)
    with meta:
        vae = AutoencoderKL(ddconfig=VAE, embed_dim=4)
    config = json.loads((Path(comfy.sd1_clip.__file__).parent / "sd1_clip_config.json").read_text())
    clip = comfy.clip_model.CLIPTextModel(config, torch.float16, meta, ops)
    out: dict[str, tuple[tuple[int, ...], str]] = {}
    for prefix, module in (
        ("model.diffusion_model.", unet),
        ("first_stage_model.", vae),
        ("cond_stage_model.transformer.", clip),
    ):
        for key, tensor in module.state_dict().items():
            out[prefix + key] = (tuple(tensor.shape), key)
    return out


def generate(path: Path) -> None:
    import torch

    save_file = importlib.import_module("safetensors.torch").save_file

    g = torch.Generator().manual_seed(SEED)
    tensors = {}
    for key, (shape, _) in sorted(_shapes().items()):
        last = key.rsplit(".", 1)[-1]
        if last == "bias":
            t = torch.zeros(shape, dtype=torch.float16)
        elif "norm" in key and last == "weight":
            t = torch.ones(shape, dtype=torch.float16)
        else:
            t = torch.randn(shape, generator=g).mul_(0.02).to(torch.float16)
        tensors[key] = t
    tmp = path.with_suffix(".partial")
    save_file(tensors, str(tmp), metadata={"generator": "tests/comfy/sd15.py", "seed": str(SEED)})
    os.replace(tmp, path)


if __name__ == "__main__":
    generate(Path(sys.argv[1]))
