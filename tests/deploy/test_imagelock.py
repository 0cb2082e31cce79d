"""The image lock's staleness check (tests/deploy/imagelock.py): the committed lock is current,
and each way of letting it drift from its inputs, the pin or the image's rules is caught."""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.deploy import imagelock

ROOT = Path(__file__).resolve().parents[2]
FILES = ("Dockerfile", "requirements.txt", *imagelock.INPUTS[1:], imagelock.LOCK, imagelock.TRIM)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A copy of what the check reads, to break on purpose."""
    for name in FILES:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / name, tmp_path / name)
    return tmp_path


def edit(path: Path, change: Callable[[str], str]) -> None:
    text = path.read_text()
    changed = change(text)
    assert changed != text, "the edit changed nothing"
    path.write_text(changed)


def test_the_committed_lock_is_current() -> None:
    assert imagelock.problems(ROOT) == []


def test_the_lock_is_complete_hashed_and_leaves_triton_out() -> None:
    lock = imagelock.parse_lock((ROOT / imagelock.LOCK).read_text())
    assert {"torch", "torchvision", "torchaudio", "xformers", "comfy-kitchen"} <= set(lock.pins)
    assert "triton" not in lock.pins
    assert all(lock.hashes.values())
    assert lock.pins["torch"] == "2.7.1"


def test_a_comment_change_keeps_it_current(tree: Path) -> None:
    edit(tree / "requirements.txt", lambda t: "# a new comment\n" + t)
    assert imagelock.problems(tree) == []


def test_a_changed_pin_makes_it_stale(tree: Path) -> None:
    edit(tree / "requirements.txt", lambda t: t.replace("tenacity==9.2.1", "tenacity==9.1.2"))
    found = imagelock.problems(tree)
    assert any("requirements.txt changed since" in p for p in found), found
    assert any("asks for tenacity==9.1.2 but" in p for p in found), found


def test_a_new_requirement_missing_from_the_lock(tree: Path) -> None:
    edit(tree / imagelock.INPUTS[1], lambda t: t + "opencv-python-headless\n")
    found = imagelock.problems(tree)
    assert any("has no opencv-python-headless" in p for p in found), found


def test_another_comfyui_pin_makes_it_stale(tree: Path) -> None:
    other = "COMFYUI_COMMIT=" + "a" * 40
    edit(tree / "Dockerfile", lambda t: re.sub(r"COMFYUI_COMMIT=\w+", other, t))
    found = imagelock.problems(tree)
    assert any("was made for ComfyUI" in p for p in found), found
    assert any("does not name the pinned commit" in p for p in found), found


def test_triton_back_in_the_lock_is_refused(tree: Path) -> None:
    edit(
        tree / imagelock.LOCK,
        lambda t: t + "triton==3.3.1 \\\n    --hash=sha256:" + "1" * 64 + "\n",
    )
    found = imagelock.problems(tree)
    assert any(p.startswith("triton is in") for p in found), found


def test_an_entry_without_a_hash_is_refused(tree: Path) -> None:
    edit(tree / imagelock.LOCK, lambda t: t + "six==1.16.0\n")
    found = imagelock.problems(tree)
    assert any("six has no --hash" in p for p in found), found


def test_a_cuda_13_torch_in_the_lock_is_refused(tree: Path) -> None:
    edit(
        tree / imagelock.LOCK,
        lambda t: t.replace("nvidia-cuda-runtime-cu12==12.6.77", "nvidia-cuda-runtime==13.0.96"),
    )
    found = imagelock.problems(tree)
    assert any("nvidia-cuda-runtime is not a CUDA 12 wheel" in p for p in found), found


def test_the_committed_lock_is_a_cuda_12_torch() -> None:
    lock = imagelock.parse_lock((ROOT / imagelock.LOCK).read_text())
    assert imagelock.torch_cuda_major(lock) == 12


def test_a_cuda_13_torch_refuses_the_trim_of_comfy_kitchens_cuda_kernels(tree: Path) -> None:
    """The trim list leaves comfy-kitchen's CUDA kernels out only because ComfyUI does not use
    them with a torch below CUDA 13: a CUDA 13 torch in the lock makes that entry an error."""
    entry = "comfy_kitchen/backends/cuda/_C.abi3.so"
    assert entry in imagelock.CUDA12_ONLY_TRIM
    edit(
        tree / imagelock.LOCK,
        lambda t: t.replace("nvidia-cuda-runtime-cu12==12.6.77", "nvidia-cuda-runtime==13.0.96"),
    )
    found = imagelock.problems(tree)
    assert any(p.startswith(f"{imagelock.TRIM} leaves out {entry}, but") for p in found), found
    # Without the entry, only the lock's own CUDA rules object.
    edit(
        tree / imagelock.TRIM,
        lambda t: "\n".join(line for line in t.splitlines() if not line.startswith(entry)),
    )
    found = imagelock.problems(tree)
    assert found and not any(p.startswith(imagelock.TRIM) for p in found), found


def test_a_trim_entry_without_a_reason_is_refused(tree: Path) -> None:
    edit(tree / imagelock.TRIM, lambda t: t + "torch/lib/libtorch_cuda.so\n")
    line = len((tree / imagelock.TRIM).read_text().splitlines())
    found = imagelock.problems(tree)
    assert found == [f"{imagelock.TRIM}: line {line}: 'torch/lib/libtorch_cuda.so' has no reason"]


def test_a_checkout_of_another_release_is_refused(tmp_path: Path) -> None:
    (tmp_path / "comfyui_version.py").write_text('__version__ = "0.32.0"\n')
    (tmp_path / "requirements.txt").write_text("torch\n")
    found = imagelock.problems(ROOT, tmp_path)
    assert found == [f"{tmp_path} is not ComfyUI v0.33.0 (comfyui_version.py)"]
    (tmp_path / "comfyui_version.py").write_text('__version__ = "0.33.0"\n')
    found = imagelock.problems(ROOT, tmp_path)
    assert found == [f"{imagelock.INPUTS[1]} differs from {tmp_path}/requirements.txt: refresh it"]


def test_the_start_up_check_reads_every_package_the_lock_leaves_out() -> None:
    """The check reads the lock's header; each excluded package's module is its name with ``_``
    for ``-`` (what ``excluded`` assumes), checked against the installed set where there is one."""
    from tests.deploy import startup_imports

    modules = startup_imports.excluded(startup_imports.REPO_LOCK)
    assert set(modules) == {name.replace("-", "_") for name in imagelock.EXCLUDED}
    assert "triton" in modules and "comfyui_frontend_package" in modules
