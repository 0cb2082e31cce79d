"""Every script answers --help with its usage and does nothing else: run from a bare copy of
scripts/ (no venv, no checkout), it exits 0 at once and leaves no file behind."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = sorted(p.name for p in (ROOT / "scripts").iterdir() if p.is_file())


@pytest.mark.parametrize("name", SCRIPTS)
@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_help_prints_usage_and_does_nothing(name: str, flag: str, tmp_path: Path) -> None:
    shutil.copytree(ROOT / "scripts", tmp_path / "scripts")
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    env = {k: v for k, v in os.environ.items() if k not in ("VENV", "COMFYUI_DIR")}
    done = subprocess.run(
        [str(tmp_path / "scripts" / name), flag],
        capture_output=True,
        text=True,
        timeout=10,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    text = done.stdout + done.stderr
    assert name in text or "usage" in text.lower(), text
    assert len(text.splitlines()) >= 1
    after = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    assert after == before, "--help created files"
