"""Telling "this Python lacks ComfyUI's requirements" from "ComfyUI is broken".

A worker started with the wrong venv (one without torch, psutil, ...) fails ComfyUI's first
import. That is a configuration error, not a broken worker: a task retry would fail the same way,
and the fix is to run another Python, which the message says.
"""

from __future__ import annotations

import sys
from pathlib import Path

from worker.errors import ConfigError


def missing_requirement(exc: BaseException, comfyui_dir: Path) -> ConfigError | None:
    """A ``ConfigError`` naming the module when ``exc`` says this Python lacks a package;
    ``None`` for anything else, including a module of ComfyUI's own that its checkout lacks."""
    if not isinstance(exc, ModuleNotFoundError) or not exc.name:
        return None
    top = exc.name.partition(".")[0]
    if (comfyui_dir / top).exists() or (comfyui_dir / f"{top}.py").exists():
        return None  # ComfyUI's own module: the checkout is broken, not the venv
    return ConfigError(
        f"this Python ({sys.executable}) lacks {top!r}, which ComfyUI needs (no module named "
        f"{exc.name!r}). Run the worker with .venv-image, the image's own Python set "
        "(scripts/image-venv makes it; scripts/local-run uses it unless VENV is set), or with a "
        f"venv that has ComfyUI's requirements ({comfyui_dir}/requirements.txt) and the worker's"
    )
