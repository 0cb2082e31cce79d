"""The torch set's rules, applied to a resolution (the image lock's pins, see imagelock.py):
torch, torchvision, torchaudio and xformers at their pins, every NVIDIA library a ``-cu<major>``
wheel of the base image's CUDA major, and the CUDA runtime no newer than the base image's CUDA.
"""

from __future__ import annotations

import re

TORCH_SET = ("torch", "torchvision", "torchaudio", "xformers")


def base_cuda(dockerfile: str) -> tuple[int, int]:
    match = re.search(r"^ARG BASE_IMAGE=nvidia/cuda:(\d+)\.(\d+)[.\d]*-", dockerfile, re.M)
    if not match:
        raise ValueError("Dockerfile: ARG BASE_IMAGE=nvidia/cuda:<major>.<minor>... not found")
    return int(match.group(1)), int(match.group(2))


def pins(requirements: str) -> dict[str, str]:
    found = re.findall(r"^([A-Za-z0-9._-]+)==([^\s#]+)", requirements, re.M)
    return {name.lower(): version for name, version in found}


def problems(resolved: dict[str, str], pinned: dict[str, str], cuda: tuple[int, int]) -> list[str]:
    """What is wrong with one resolution (name -> version) against the pins and the base CUDA."""
    out = []
    for name in TORCH_SET:
        if name not in pinned:
            out.append(f"requirements.txt does not pin {name}")
        elif resolved.get(name) != pinned[name]:
            out.append(f"{name} resolved to {resolved.get(name)}, pinned {pinned[name]}")
    nvidia = {n: v for n, v in resolved.items() if n.startswith("nvidia-")}
    if not nvidia:
        out.append("no nvidia-* libraries resolved: torch is not a CUDA build")
    for name in nvidia:
        # Wheels of CUDA 13 drop the suffix (nvidia-cuda-runtime) or say -cu13.
        if not name.endswith(f"-cu{cuda[0]}"):
            out.append(f"{name} is not a CUDA {cuda[0]} wheel (base image is CUDA {cuda[0]})")
    runtime = nvidia.get(f"nvidia-cuda-runtime-cu{cuda[0]}")
    if runtime is None:
        out.append(f"nvidia-cuda-runtime-cu{cuda[0]} not resolved")
    else:
        major, minor = (int(x) for x in runtime.split(".")[:2])
        if (major, minor) > cuda:
            out.append(
                f"CUDA runtime {runtime} is newer than the base image's CUDA {cuda[0]}.{cuda[1]}"
            )
    return out
