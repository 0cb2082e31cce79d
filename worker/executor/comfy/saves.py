"""Where a workflow's save nodes would write, checked before anything runs. Pure code.

Every core save node (``SaveImage``, ``SaveAnimatedWEBP``, ``SaveAudio``, ``SaveLatent``,
``SaveVideo``, ``SaveText``, ``CheckpointSave``, ``ModelSave``, ``CLIPSave``, ``VAESave``,
``LoraSave``, ...) writes under ComfyUI's output folder, which holds this run's files alone, and
ComfyUI refuses a ``filename_prefix`` that leads out of it. But it refuses only when the node
runs, after everything upstream (the sampling) has, with a message that quotes the worker's
folders, or fails on a name the file system can't hold. So a literal ``filename_prefix`` (and a
dataset's ``folder_name``) is checked here first: relative, ``/``-separated, no ``..``, no NUL
and no part longer than ``MAX_PART_BYTES``. Names that come through a link are left to ComfyUI.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from worker.errors import ErrorType, JobFailed
from worker.message.bounded import clip, echo

NAME_INPUTS = ("filename_prefix", "folder_name")
MAX_PART_BYTES = 200  # ComfyUI adds a counter and an extension ("_00001_.safetensors")
MAX_BYTES = 1024


def problem(name: str) -> str | None:
    """Why ``name`` can't name a file inside the output folder, or None."""
    if "\x00" in name:
        return "holds a NUL character"
    if "\\" in name:
        return 'holds a "\\" (separate folders with "/")'
    if name.startswith("/"):
        return "is an absolute path"
    if len(name.encode("utf-8", "surrogatepass")) > MAX_BYTES:
        return f"is longer than {MAX_BYTES} bytes"
    parts = name.split("/")
    if ".." in parts:
        return 'has a ".." part'
    if any(len(p.encode("utf-8", "surrogatepass")) > MAX_PART_BYTES for p in parts):
        return f"has a part longer than {MAX_PART_BYTES} bytes"
    return None


def check_names(workflow: Mapping[str, Any]) -> None:
    """Raise ``JobFailed(invalid_workflow)`` for the first literal save name that would not stay
    a file inside the job's output folder."""
    for node_id, node in workflow.items():
        inputs = node.get("inputs") or {}
        for input_name in NAME_INPUTS:
            value = inputs.get(input_name)
            why = problem(value) if isinstance(value, str) else None
            if why is not None:
                raise JobFailed(
                    ErrorType.INVALID_WORKFLOW,
                    f"node {clip(str(node_id), 100)} ({clip(str(node.get('class_type')), 100)}), "
                    f'input "{input_name}": {echo(value)} {why}; outputs are saved inside the '
                    'job\'s own folder: use a relative name such as "sub/name"',
                    node_id=str(node_id),
                )
