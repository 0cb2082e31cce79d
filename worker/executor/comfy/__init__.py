"""The embedded ComfyUI executor: ComfyUI runs inside the worker's process, warm across jobs.

``build_executor(settings)`` is what ``python -m worker run`` calls (``EXECUTOR``'s default).
Nothing here imports ComfyUI or torch: that happens in ``start()``.
"""

from __future__ import annotations

from worker.config import Settings
from worker.executor.base import Executor


def build_executor(settings: Settings) -> Executor:
    from worker.executor.comfy.executor import ComfyExecutor

    return ComfyExecutor(settings)
