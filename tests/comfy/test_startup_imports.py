"""image/startup-imports.txt names every third-party module ComfyUI's own files import during the
worker's boot (needs COMFYUI_DIR): CI imports that list in the image's Python set, so a module
missing from it would be a crash CI cannot see."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.comfy.conftest import ComfyHarness
from tests.deploy import startup_imports

LIST = Path(__file__).resolve().parents[2] / "image" / "startup-imports.txt"

pytestmark = pytest.mark.comfyui


def test_every_module_comfyui_imports_at_boot_is_listed(comfy: ComfyHarness) -> None:
    imported = startup_imports.third_party(dict(sys.modules), comfy.comfyui_dir)
    assert "torch" in imported and "comfy_kitchen" in imported  # the discovery itself works
    listed = set(startup_imports.listed(LIST))
    left_out = startup_imports.excluded(startup_imports.REPO_LOCK)
    # triton is imported where installed (every import of it is guarded); the browser front end,
    # also left out of the image, must never be: the worker gives ComfyUI an empty web root.
    front_end = [m for m in imported if m in left_out and m != "triton"]
    assert front_end == [], f"the image leaves these out, but the boot imported them: {front_end}"
    missing = [m for m in imported if m not in listed and m not in left_out]
    assert missing == [], (
        f"add these to {LIST.name} (COMFYUI_DIR=... python -m tests.deploy.startup_imports "
        f"discover): {missing}"
    )
