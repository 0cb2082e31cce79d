"""The warmup workflow (skipped without COMFYUI_DIR)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.comfy import workflows
from tests.comfy.conftest import ComfyHarness
from worker.config import Settings
from worker.errors import ConfigError
from worker.executor.comfy import warmup

pytestmark = pytest.mark.comfyui


def _settings(source: Path) -> Settings:
    return Settings.from_env({"WARMUP_WORKFLOW": str(source)})


def test_warmup_runs_the_workflow_and_leaves_nothing(comfy: ComfyHarness, tmp_path: Path) -> None:
    source = tmp_path / "warmup.json"
    source.write_text(json.dumps({"workflow": workflows.model_free(color=0x101010)}))

    seconds = warmup.run(comfy.executor, _settings(source), tmp_path / "w")

    assert seconds > 0 and not (tmp_path / "w").exists()


def test_an_invalid_warmup_is_a_configuration_error(comfy: ComfyHarness, tmp_path: Path) -> None:
    source = tmp_path / "warmup.json"
    source.write_text(json.dumps(workflows.sd15("absent.safetensors")))

    with pytest.raises(ConfigError, match=r"WARMUP_WORKFLOW=.*absent\.safetensors"):
        warmup.run(comfy.executor, _settings(source), tmp_path / "w")
