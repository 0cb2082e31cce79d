"""Fixtures for tests against real ComfyUI: one booted executor per test session.

Tests that take the ``comfy`` fixture run when ``COMFYUI_DIR`` points at a ComfyUI checkout and
the interpreter has torch (use the ComfyUI venv); otherwise they are skipped with the reason.
ComfyUI boots once per process, as in the worker, so every such test shares one executor.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from worker.config import Settings
from worker.executor.base import ExecRequest, ExecResult, Progress
from worker.executor.comfy.executor import ComfyExecutor

DUMMY_MODEL = "tiny-dummy.safetensors"  # listed as available; never loaded


def comfyui_dir_or_skip() -> Path:
    value = os.environ.get("COMFYUI_DIR", "").strip()
    if not value:
        pytest.skip(
            "COMFYUI_DIR is not set: these tests need a ComfyUI checkout "
            "(scripts/install-comfyui DIR, then COMFYUI_DIR=DIR VENV/bin/python -m pytest)"
        )
    if importlib.util.find_spec("torch") is None:
        pytest.skip(
            "COMFYUI_DIR is set but this Python has no torch: run the tests with the "
            "ComfyUI venv's interpreter"
        )
    return Path(value)


@dataclass
class ComfyHarness:
    executor: ComfyExecutor
    models_dir: Path
    comfyui_dir: Path
    progress: list[Progress] = field(default_factory=list)

    def run(
        self,
        job_id: str,
        workflow: dict[str, Any],
        base: Path,
        inputs: dict[str, bytes] | None = None,
        progress: Any = None,
    ) -> ExecResult:
        """One job with its own input/output dirs under ``base``, like the runner does it."""
        input_dir, output_dir = base / job_id / "in", base / job_id / "out"
        input_dir.mkdir(parents=True)
        for name, data in (inputs or {}).items():
            (input_dir / name).write_bytes(data)
        self.progress.clear()
        return self.executor.execute(
            ExecRequest(
                job_id,
                workflow,
                input_dir,
                output_dir,
                progress=progress if progress is not None else self.progress.append,
            )
        )


@pytest.fixture(scope="session")
def comfy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ComfyHarness]:
    comfyui_dir = comfyui_dir_or_skip()
    models = tmp_path_factory.mktemp("models")
    (models / "checkpoints").mkdir()
    (models / "checkpoints" / DUMMY_MODEL).write_bytes(b"not a model")
    work = tmp_path_factory.mktemp("work")
    settings = Settings.from_env(
        {
            "COMFYUI_DIR": str(comfyui_dir),
            "WORK_DIR": str(work),
            "MODELS_DIR": str(models),
            "COMFYUI_DEVICE": os.environ.get("COMFYUI_DEVICE", "auto"),
            "PROGRESS_INTERVAL_S": "0",
        }
    )
    executor = ComfyExecutor(settings)
    executor.start()
    try:
        yield ComfyHarness(executor, models, comfyui_dir)
    finally:
        executor.close()
