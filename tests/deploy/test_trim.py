"""What the image leaves out of the lock's install (image/trim.txt, applied by image/trim.py): the
list is well formed, the applier deletes exactly the matches and refuses an entry that matches
nothing, every entry matches the lock's fresh install, and in the trimmed .venv-image (what
scripts/image-venv makes, as the Dockerfile does) everything the worker imports still imports, as
here and as if on an L4.

The .venv-image tests skip, saying why, where scripts/image-venv has not made it (scripts/test
makes it before pytest runs)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from image import trim
from tests.deploy import cuda_arch, imagelock

ROOT = Path(__file__).resolve().parents[2]
LIST = ROOT / "image" / "trim.txt"
APPLIER = ROOT / "image" / "trim.py"
VENV = ROOT / ".venv-image"
PYTHON = VENV / "bin" / "python"
ENTRIES = trim.parse(LIST.read_text())
# Beside entries of the list, and used: the L4's attention kernels, torch's shared-memory helper,
# modules named test*, and the libraries torch needs or loads.
KEPT = (
    "xformers/flash_attn_3/_C.so",
    "torch/bin/torch_shm_manager",
    "torch/testing/__init__.py",
    "numpy/testing/__init__.py",
    "sympy/testing/__init__.py",
    "nvidia/cublas/lib/libcublas.so.12",
    "nvidia/cufft/lib/libcufft.so.11",
    "nvidia/cudnn/lib/libcudnn_adv.so.9",
    "nvidia/cusolver/lib/libcusolver.so.11",
    "nvidia/nccl/lib/libnccl.so.2",
    "comfy_kitchen/backends/cuda/__init__.py",
    "comfy_kitchen/backends/hip/__init__.py",
)

needs_venv = pytest.mark.skipif(
    not PYTHON.exists(), reason=f"no {VENV.name}: scripts/image-venv makes it (3.5 GB of wheels)"
)


def site_packages() -> Path:
    found = sorted((VENV / "lib").glob("python3.*/site-packages"))
    assert len(found) == 1, found
    return found[0]


def run_in_venv(code: str, *args: str, timeout: int = 240) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return subprocess.run(
        [str(PYTHON), *(("-c", code) if code else ()), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def apply(site: Path, listing: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    """The applier as the Dockerfile runs it: a script, this time on ``site``."""
    return subprocess.run(
        [sys.executable, str(APPLIER), "--site-packages", str(site), *flags, str(listing)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def touch(root: Path, *names: str, size: int = 0) -> None:
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"x" * size)


# --- the list and the applier


def test_the_list_parses_and_every_entry_says_why() -> None:
    assert ENTRIES, "image/trim.txt lists nothing"
    for entry in ENTRIES:
        assert len(entry.reason.split()) >= 8, f"{entry.pattern}: say why nothing loads it"
    # The L4's attention kernels stay (the list's header says why; a test below shows it).
    assert not any(e.pattern.startswith("xformers/") for e in ENTRIES)


@pytest.mark.parametrize(
    ("line", "error"),
    [
        ("torch/include", "'torch/include' has no reason"),
        ("/opt/venv/x because", "must be a glob inside site-packages"),
        ("../bin/python because", "must be a glob inside site-packages"),
        ("** everything", "must be a glob inside site-packages"),
        ("a/b why\na/b why again", "'a/b' is listed twice"),
    ],
)
def test_a_malformed_entry_is_refused(line: str, error: str) -> None:
    with pytest.raises(ValueError, match=re.escape(error)):
        trim.parse(f"# a comment\n{line}\n")


def test_the_applier_deletes_the_matches_and_says_how_many_bytes(tmp_path: Path) -> None:
    site = tmp_path / "site-packages"
    touch(
        site, "pkg/tests/test_a.py", "pkg/sub/tests/test_b.py", "pkg/sub/tests/data/x.bin", size=10
    )
    touch(site, "pkg/bin/protoc", "pkg/bin/protoc-3.13", size=100)
    touch(site, "pkg/testing/__init__.py", "pkg/bin/shm_manager", "pkg/core.py", size=1)
    listing = tmp_path / "trim.txt"
    listing.write_text("pkg/**/tests its test suite\npkg/bin/protoc* a build tool\n")
    done = apply(site, listing)
    assert done.returncode == 0, done.stderr
    assert "30 bytes    2 path(s)  pkg/**/tests" in done.stdout
    assert "200 bytes    2 path(s)  pkg/bin/protoc*" in done.stdout
    assert "removed 230 bytes in all" in done.stdout
    left = sorted(str(p.relative_to(site)) for p in site.rglob("*") if p.is_file())
    assert left == ["pkg/bin/shm_manager", "pkg/core.py", "pkg/testing/__init__.py"]


def test_an_entry_that_matches_nothing_fails_and_deletes_nothing(tmp_path: Path) -> None:
    site = tmp_path / "site-packages"
    touch(site, "pkg/tests/test_a.py", "pkg/core.py")
    listing = tmp_path / "trim.txt"
    listing.write_text("pkg/tests its test suite\npkg/moved/lib.so a library the lock moved\n")
    done = apply(site, listing)
    assert done.returncode == 1
    assert f"{listing}:2: pkg/moved/lib.so matches nothing in {site}" in done.stderr
    assert (site / "pkg" / "tests" / "test_a.py").exists(), "nothing is deleted then"


def test_a_dry_run_deletes_nothing(tmp_path: Path) -> None:
    site = tmp_path / "site-packages"
    touch(site, "pkg/tests/test_a.py", size=7)
    listing = tmp_path / "trim.txt"
    listing.write_text("pkg/tests its test suite\n")
    done = apply(site, listing, "--dry-run")
    assert done.returncode == 0, done.stderr
    assert "would remove 7 bytes in all" in done.stdout
    assert (site / "pkg" / "tests" / "test_a.py").exists()


def test_the_cuda_12_only_entries_are_in_the_list() -> None:
    """imagelock refuses these entries with a CUDA 13 torch (test_imagelock.py); they must be the
    list's own spelling, or that check would hold nothing."""
    assert set(imagelock.CUDA12_ONLY_TRIM) <= {e.pattern for e in ENTRIES}


@pytest.mark.skipif(not os.environ.get("COMFYUI_DIR"), reason="needs COMFYUI_DIR (ComfyUI)")
def test_comfyui_turns_comfy_kitchens_cuda_kernels_off_below_cuda_13() -> None:
    """The reason of the comfy-kitchen CUDA entry, in the pinned ComfyUI's own words."""
    source = (Path(os.environ["COMFYUI_DIR"]) / "comfy" / "quant_ops.py").read_text()
    rule = re.search(r"if cuda_version < \(13,\):\n\s+ck\.registry\.disable\(\"cuda\"\)", source)
    assert rule, "ComfyUI's rule for comfy-kitchen's CUDA backend changed: check the trim entry"


# --- the lock's install, fresh and trimmed (.venv-image)


@needs_venv
def test_every_entry_matches_the_locks_fresh_install(tmp_path: Path) -> None:
    """Every file pip installed (each distribution's RECORD, which the trim leaves as it was),
    laid out again as empty files: each entry matches some of them."""
    mirror = tmp_path / "site-packages"
    site = site_packages()
    count = 0
    for record in site.glob("*.dist-info/RECORD"):
        for row in record.read_text().splitlines():
            name = row.rsplit(",", 2)[0]
            if name and not name.startswith(("..", "/")):
                touch(mirror, name)
                count += 1
    assert count > 10_000, f"{count} files in the RECORDs: not the lock's install"
    unmatched = [m.entry.pattern for m in trim.plan(mirror, ENTRIES) if not m.paths]
    assert unmatched == [], f"these match nothing the lock installs: {unmatched}"


@needs_venv
def test_venv_image_is_trimmed() -> None:
    site = site_packages()
    left = [m.entry.pattern for m in trim.plan(site, ENTRIES) if m.paths]
    assert left == [], f"{VENV.name} still has {left}: scripts/image-venv makes it again"
    # Next to what went, what the runtime uses stays.
    for kept in KEPT:
        assert (site / kept).exists(), f"{kept} is gone"


@needs_venv
def test_no_locked_package_is_missing_from_the_trimmed_set() -> None:
    done = run_in_venv("", "-m", "tests.deploy.imagelock", "installed")
    assert done.returncode == 0, done.stderr


@needs_venv
def test_comfy_kitchen_imports_and_reports_its_cuda_kernels_unavailable() -> None:
    """As ComfyUI's quant_ops sees it on an L4: imported, the CUDA and HIP backends unavailable
    (file not found), the eager kernels run; as if on an sm_89 GPU too."""
    code = """
import sys, tempfile
from pathlib import Path
from tests.deploy import startup_imports
startup_imports.as_if_gpu(Path(tempfile.mkdtemp()))
import torch
assert int(torch.version.cuda.split(".")[0]) < 13, torch.version.cuda
import comfy_kitchen as ck
from comfy_kitchen.backends import cuda
assert cuda._EXT_AVAILABLE is False and cuda._C is None
assert cuda._EXT_ERROR.startswith("Extension file not found"), cuda._EXT_ERROR
backends = ck.list_backends()
assert not backends["cuda"]["available"] and not backends["hip"]["available"], backends
assert backends["eager"]["available"], backends
assert not ck.int8_attention_is_available() and not ck.flash_attention_decode_is_available()
ck.registry.disable("cuda")  # what ComfyUI does with a CUDA 12 torch
x = torch.randn(8, 16)
q = ck.quantize_per_tensor_fp8(x, torch.tensor(0.5))
assert q.dtype == torch.float8_e4m3fn, q.dtype
print("comfy_kitchen ok", torch.version.cuda)
"""
    done = run_in_venv(code)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "comfy_kitchen ok 12." in done.stdout


@needs_venv
def test_xformers_imports_and_keeps_flash_attention_3_for_the_l4() -> None:
    """Why xformers/flash_attn_3 stays: its kernels carry sm_80 code (runs on the L4's sm_89), and
    xformers 0.0.31 loads it and tries it first from sm_80 on. ComfyUI's attention on an L4 is
    xformers' (comfy/ldm/modules/attention.py prefers it when importable)."""
    code = """
import torch
import xformers.ops
from xformers.ops.fmha import dispatch, flash3
from xformers.ops.fmha.common import Inputs
assert flash3._C_flashattention3 is not None, "FlashAttention-3 is not loaded"
assert flash3.FwOp.CUDA_MINIMUM_COMPUTE_CAPABILITY <= (8, 9)
q = torch.empty(1, 64, 8, 40, dtype=torch.float16)
first = dispatch._dispatch_fw_priority_list(Inputs(q, q, q), False)[0]
assert first is flash3.FwOp, first
print("xformers ok")
"""
    done = run_in_venv(code)
    assert done.returncode == 0, done.stderr[-3000:]
    archs = cuda_arch.scan_file(site_packages() / "xformers" / "flash_attn_3" / "_C.so")
    assert 80 in archs.sm("sass"), archs.sm("sass")


@needs_venv
@pytest.mark.parametrize("mode", [(), ("--as-if-gpu",)], ids=["here", "as-if-gpu"])
def test_the_start_up_imports_pass_in_the_trimmed_set(mode: tuple[str, ...]) -> None:
    listing = str(ROOT / "image" / "startup-imports.txt")
    done = run_in_venv("", "-m", "tests.deploy.startup_imports", "check", *mode, listing)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "startup-imports: 0 failure(s)" in done.stderr
