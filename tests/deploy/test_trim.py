"""What the image leaves out of the lock's install (image/trim.txt, applied by image/trim.py): the
list is well formed, and the applier deletes exactly the matches and refuses an entry that
matches nothing."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from image import trim
from tests.deploy import imagelock

ROOT = Path(__file__).resolve().parents[2]
LIST = ROOT / "image" / "trim.txt"
APPLIER = ROOT / "image" / "trim.py"
ENTRIES = trim.parse(LIST.read_text())


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
    # The L4's attention kernels stay (the list's header says why).
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
