"""The resolver check's judgement, on resolutions written here (scripts/check-deploy runs it on
the real ``uv pip compile`` output)."""

from __future__ import annotations

from tests.deploy import resolve

PINNED = {
    "torch": "2.7.1",
    "torchvision": "0.22.1",
    "torchaudio": "2.7.1",
    "xformers": "0.0.31.post1",
}
CU126 = {
    **PINNED,
    "nvidia-cuda-runtime-cu12": "12.6.77",
    "nvidia-cublas-cu12": "12.6.4.1",
    "triton": "3.3.1",
}


def test_the_cu126_set_on_a_cuda_12_6_base_passes() -> None:
    assert resolve.problems(CU126, PINNED, (12, 6)) == []


def test_cuda_13_wheels_fail() -> None:
    cu13 = {**PINNED, "nvidia-cuda-runtime": "13.0.96", "nvidia-cublas": "13.1.0.3"}
    found = resolve.problems(cu13, PINNED, (12, 6))
    assert any("nvidia-cuda-runtime is not a CUDA 12 wheel" in p for p in found)
    assert any("nvidia-cuda-runtime-cu12 not resolved" in p for p in found)


def test_a_runtime_newer_than_the_base_fails() -> None:
    cu128 = {**CU126, "nvidia-cuda-runtime-cu12": "12.8.90"}
    assert any("newer than the base" in p for p in resolve.problems(cu128, PINNED, (12, 6)))


def test_a_moved_pin_or_cpu_torch_fails() -> None:
    moved = {**CU126, "torch": "2.8.0"}
    assert any("torch resolved to 2.8.0" in p for p in resolve.problems(moved, PINNED, (12, 6)))
    cpu = dict(PINNED)
    assert any("not a CUDA build" in p for p in resolve.problems(cpu, PINNED, (12, 6)))


def test_base_cuda_is_read_from_the_dockerfile() -> None:
    assert resolve.base_cuda("ARG BASE_IMAGE=nvidia/cuda:12.6.3-base-ubuntu24.04\n") == (12, 6)
