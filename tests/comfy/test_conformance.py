"""The ComfyUI internals the executor relies on, by name (skipped without COMFYUI_DIR).

When the pinned release moves, this says at once which call moved (see
shared notes on embedding ComfyUI and worker/executor/comfy/gpu.py for why each is used).
"""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path

import pytest

from tests.comfy import workflows
from tests.comfy.conftest import ComfyHarness

pytestmark = pytest.mark.comfyui


def test_the_calls_the_executor_makes_still_exist(comfy: ComfyHarness) -> None:
    execution = importlib.import_module("execution")
    nodes = importlib.import_module("nodes")
    folder_paths = importlib.import_module("folder_paths")
    mm = importlib.import_module("comfy.model_management")
    utils = importlib.import_module("comfy.utils")

    assert inspect.iscoroutinefunction(execution.validate_prompt)
    assert inspect.iscoroutinefunction(nodes.init_extra_nodes)
    assert {"RAM_PRESSURE", "CLASSIC", "LRU", "NONE"} <= set(execution.CacheType.__members__)
    for name in (
        "set_input_directory",
        "set_output_directory",
        "set_temp_directory",
        "set_user_directory",
        "add_model_folder_path",
        "get_filename_list",
    ):
        assert callable(getattr(folder_paths, name)), name
    for name in (
        "throw_exception_if_processing_interrupted",
        "unload_all_models",
        "soft_empty_cache",
        "set_cudnn_benchmark",
        "is_oom",
    ):
        assert callable(getattr(mm, name)), name
    assert callable(nodes.interrupt_processing)
    assert callable(utils.set_progress_bar_global_hook)
    assert callable(utils.set_progress_bar_enabled)
    # gpu.py: main.py's GPU-only start-up steps.
    aimdo = importlib.import_module("comfy_aimdo.control")
    assert callable(aimdo.init) and callable(aimdo.init_devices)
    assert hasattr(importlib.import_module("comfy.model_patcher"), "ModelPatcherDynamic")
    assert importlib.util.find_spec("cuda_malloc") is not None


def test_output_nodes_leave_the_cache_upstream_nodes_stay(
    comfy: ComfyHarness, tmp_path: Path
) -> None:
    comfy.run("shape", workflows.model_free(color=0x303030), tmp_path)

    booted = comfy.executor.comfy
    assert booted is not None
    outputs = booted.prompt_executor.caches.outputs  # what cache.py reaches into
    assert isinstance(outputs.cache, dict)
    assert outputs.cache_key_set.get_data_key("1") in outputs.cache
    assert outputs.cache_key_set.get_data_key("3") not in outputs.cache
    assert booted.server.send_sync.__name__ == "<lambda>"  # our sink, not the dead loop's queue
