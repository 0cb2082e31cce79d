"""A worker started by a Python that lacks ComfyUI's requirements says so and which Python to use,
instead of dying with a bare ``ModuleNotFoundError`` (exit 70) on every task retry.

The fixture is a ComfyUI checkout whose first import needs a package no Python here has: the
failure a venv without ComfyUI's requirements (psutil, torch, ...) meets. Each run is a child
process, so the fake checkout's modules never reach this one.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cloud import Cloud
from tests.producer.cli import worker_cli
from worker.commands.check import CheckCode
from worker.exitcodes import ExitCode

LACKING = "a_comfyui_requirement_nobody_installed"


@pytest.fixture
def comfyui_lacking_a_requirement(tmp_path: Path) -> Path:
    root = tmp_path / "ComfyUI"
    (root / "comfy").mkdir(parents=True)
    (root / "comfy" / "__init__.py").write_text("")
    (root / "comfy" / "options.py").write_text("def enable_args_parsing():\n    pass\n")
    (root / "comfy" / "cli_args.py").write_text(
        "import argparse\nargs = argparse.Namespace(cpu=True, disable_api_nodes=False,"
        " disable_metadata=True)\n"
    )
    (root / "execution.py").write_text("")
    (root / "folder_paths.py").write_text(f"import {LACKING}\n")  # as ComfyUI's `import psutil`
    return root


def test_run_exits_78_naming_the_module_and_the_venv_to_use(
    cloud: Cloud, comfyui_lacking_a_requirement: Path
) -> None:
    done = worker_cli(
        cloud,
        "run",
        EXECUTOR="worker.executor.comfy:build_executor",
        COMFYUI_DIR=comfyui_lacking_a_requirement,
        COMFYUI_DEVICE="cpu",
    )
    assert done.returncode == ExitCode.CONFIG, done.stderr[-3000:]
    assert f"lacks '{LACKING}', which ComfyUI needs" in done.stderr
    assert ".venv-image" in done.stderr and "requirements.txt" in done.stderr


def test_check_names_the_module_and_the_venv_to_use(
    cloud: Cloud, comfyui_lacking_a_requirement: Path
) -> None:
    done = worker_cli(
        cloud,
        "check",
        "--skip",
        "services,models",
        COMFYUI_DIR=comfyui_lacking_a_requirement,
        COMFYUI_DEVICE="cpu",
    )
    lines = {line["check"]: line for line in map(json.loads, done.stdout.splitlines())}
    assert done.returncode == CheckCode.COMFYUI_IMPORT
    assert lines["comfyui_import"]["state"] == "failed"
    assert f"lacks '{LACKING}'" in lines["comfyui_import"]["detail"]
    assert lines["gpu"]["state"] == "skipped"


def test_a_module_of_comfyuis_own_missing_is_still_a_broken_checkout(
    cloud: Cloud, comfyui_lacking_a_requirement: Path
) -> None:
    (comfyui_lacking_a_requirement / "folder_paths.py").write_text("import app.gone\n")
    (comfyui_lacking_a_requirement / "app").mkdir()
    done = worker_cli(
        cloud,
        "run",
        EXECUTOR="worker.executor.comfy:build_executor",
        COMFYUI_DIR=comfyui_lacking_a_requirement,
        COMFYUI_DEVICE="cpu",
    )
    assert done.returncode == ExitCode.WORKER_BROKEN, done.stderr[-3000:]
    assert "which ComfyUI needs" not in done.stderr
