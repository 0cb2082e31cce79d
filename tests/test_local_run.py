"""``scripts/local-run``: the playground (``--keep``) serves a second shell's jobs until Ctrl-C; the
script never installs into a venv of the user's, and offline it suggests only what it can use."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.cloud import REPO
from tests.fakes.scripted import workflow
from tests.playground import playground


def test_the_playground_runs_a_second_shells_jobs_until_ctrl_c(tmp_path: Path) -> None:
    # This process's PUBSUB_EMULATOR_HOST / STORAGE_EMULATOR_HOST (the test session's emulators,
    # when they run) reach the playground too: it must use its own stack, not its environment.
    wf = tmp_path / "wf.json"
    wf.write_text(json.dumps(workflow(outputs=[{"name": "hello.txt", "text": "hi"}])))
    with playground(tmp_path, tmp_path, EXECUTOR="tests.fakes.scripted:build") as play:
        assert play.exports["OUTPUT_URI"] == "gs://local-outputs/outputs"
        assert {"JOBS_TOPIC", "RESULTS_TOPIC", "GOOGLE_CLOUD_PROJECT"} <= play.exports.keys()
        done = play.shell(
            "submit",
            "--workflow",
            wf,
            "--job-id",
            "mine",
            "--wait",
            "--timeout",
            "60",
            "--download",
            tmp_path / "out",
        )
        assert done.returncode == 0, done.stderr + play.text()
        uri = "gs://local-outputs/outputs/mine/hello.txt"
        assert done.stdout.splitlines() == ["mine", f"mine succeeded {uri}"]
        assert (tmp_path / "out" / "mine" / "hello.txt").read_text() == "hi"
        status = play.shell("status", "mine")
        assert status.returncode == 0, status.stderr


def _copy_of_the_scripts(tmp_path: Path) -> Path:
    """The scripts with this checkout's ready .venv: scripts/setup has nothing to install."""
    if not (REPO / ".venv" / ".requirements-dev.sha256").is_file():
        pytest.skip("needs this checkout's .venv made by scripts/setup")
    root = tmp_path / "repo"
    shutil.copytree(REPO / "scripts", root / "scripts")
    shutil.copy(REPO / "requirements-dev.lock", root)
    (root / ".venv").symlink_to(REPO / ".venv")
    return root


def test_offline_it_suggests_comfyui_dir_and_leaves_the_users_venv_alone(tmp_path: Path) -> None:
    root = _copy_of_the_scripts(tmp_path)
    mine = tmp_path / "my-comfy-venv"
    mine.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "COMFYUI_DIR"}
    # GitHub unreachable, as offline: every https://github.com/ URL points at nothing.
    env |= {
        "VENV": str(mine),
        "GIT_CONFIG_COUNT": "1",
        "GIT_CONFIG_KEY_0": f"url.file://{tmp_path}/offline/.insteadOf",
        "GIT_CONFIG_VALUE_0": "https://github.com/",
    }
    done = subprocess.run(
        [str(root / "scripts" / "local-run")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1, done.stderr
    assert "could not fetch v0.33.0" in done.stderr
    assert "COMFYUI_DIR=/path/to/ComfyUI scripts/local-run" in done.stderr
    assert "--repo" not in done.stderr  # an install-comfyui flag local-run can't pass on
    assert list(mine.iterdir()) == []  # scripts/setup made no venv there, installed nothing
