"""Prove the image's pinned torch set resolves for the image's platform, on CUDA 12 like its base.

Runs ``uv pip compile`` on requirements.txt for manylinux_2_28 x86_64 (metadata only: no wheel is
downloaded) for the base image's Python and for 3.11, then checks the resolution: torch,
torchvision, torchaudio and xformers at their pins, every NVIDIA library a ``-cu<major>`` wheel
of the base image's CUDA major, and the CUDA runtime no newer than the base image's CUDA.

    python -m tests.deploy.resolve --uv UV [--cache DIR] requirements.txt Dockerfile
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

TORCH_SET = ("torch", "torchvision", "torchaudio", "xformers")
PYTHONS = ("3.12", "3.11")  # ubuntu24.04 in the CUDA base; Debian 12 in the offline build


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


def compile_for(uv: str, requirements: Path, python: str, cache: str | None) -> dict[str, str]:
    cmd = [uv, "pip", "compile", str(requirements), "--python-platform", "x86_64-manylinux_2_28"]
    cmd += ["--python-version", python, "--no-header", "--no-annotate", "--quiet"]
    cmd += ["--index-url", "https://pypi.org/simple"]
    if cache:
        cmd += ["--cache-dir", cache]
    result = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=600)
    if result.returncode != 0:
        raise RuntimeError(f"uv pip compile (python {python}) failed:\n{result.stderr}")
    return pins(result.stdout)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--uv", required=True)
    parser.add_argument("--cache")
    parser.add_argument("requirements", type=Path)
    parser.add_argument("dockerfile", type=Path)
    args = parser.parse_args(argv)
    cuda = base_cuda(args.dockerfile.read_text())
    pinned = pins(args.requirements.read_text())
    bad = []
    for python in PYTHONS:
        try:
            resolved = compile_for(args.uv, args.requirements, python, args.cache)
        except RuntimeError as exc:
            print(f"resolve: {exc}", file=sys.stderr)
            return 1
        bad += [f"python {python}: {p}" for p in problems(resolved, pinned, cuda)]
        runtime = resolved.get(f"nvidia-cuda-runtime-cu{cuda[0]}")
        print(
            f"resolve: python {python}: torch {resolved.get('torch')}, xformers "
            f"{resolved.get('xformers')}, CUDA runtime {runtime}; base CUDA {cuda[0]}.{cuda[1]}",
            file=sys.stderr,
        )
    for p in bad:
        print(f"resolve: {p}", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
