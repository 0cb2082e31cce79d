"""``python -m worker check`` with real ComfyUI (skipped without COMFYUI_DIR)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.comfy.conftest import comfyui_dir_or_skip
from worker.commands.check import CheckCode

pytestmark = pytest.mark.comfyui
REPO = Path(__file__).resolve().parents[2]


def run_check(**env: str) -> tuple[int, dict[str, dict[str, object]]]:
    comfyui_dir = comfyui_dir_or_skip()
    full_env = {**os.environ, "COMFYUI_DIR": str(comfyui_dir), "PYTHONPATH": str(REPO), **env}
    done = subprocess.run(
        [sys.executable, "-m", "worker", "check", "--skip", "services,models"],
        check=False,
        cwd=REPO,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    return done.returncode, {line["check"]: line for line in lines}


def test_comfyui_imports() -> None:
    code, lines = run_check()
    assert code == CheckCode.OK, lines
    assert lines["comfyui_import"]["state"] == "ok"
    assert "imports" in str(lines["comfyui_import"]["detail"])


def test_bad_comfyui_flags_are_an_import_failure() -> None:
    code, lines = run_check(COMFYUI_ARGS="--no-such-flag")
    assert code == CheckCode.COMFYUI_IMPORT
    assert "COMFYUI_ARGS" in str(lines["comfyui_import"]["detail"])
