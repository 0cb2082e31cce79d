"""Turn what ComfyUI's ``validate_prompt`` returns into one readable ``JobFailed``.

Pure code (no ComfyUI import): the executor passes in ComfyUI's answer plus two lookups, so the
mapping is unit-tested without ComfyUI. ``validate_prompt`` reports a workflow-level ``error`` and,
per node, ``node_errors[node_id] = {"class_type", "errors": [{"type", "message", "details",
"extra_info": {"input_name", "received_value", ...}}]}``. A batch job fails as a whole when any
output fails validation (ComfyUI's server would run the valid outputs and drop the rest silently).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from worker.errors import ErrorType, JobFailed

MODEL_SUFFIXES = frozenset(
    {".safetensors", ".sft", ".ckpt", ".pt", ".pt2", ".pth", ".bin", ".pkl", ".gguf", ".onnx"}
)
# When several model folders list the same files (typically: all empty), the input's name says
# which folder a loader reads.
INPUT_FOLDER_HINTS = {
    "ckpt_name": "checkpoints",
    "lora_name": "loras",
    "vae_name": "vae",
    "clip_name": "text_encoders",
    "clip_name1": "text_encoders",
    "clip_name2": "text_encoders",
    "unet_name": "diffusion_models",
    "control_net_name": "controlnet",
    "style_model_name": "style_models",
    "gligen_name": "gligen",
    "model_name": "upscale_models",
}
MAX_LISTED = 50  # available models listed in a message; the details carry all of them

OptionsLookup = Callable[[str, str], Sequence[str] | None]  # (class_type, input) -> combo options


@dataclass(frozen=True)
class Problem:
    """One reason one node failed validation."""

    node_id: str
    class_type: str
    input_name: str | None
    kind: str  # ComfyUI's error type, e.g. value_not_in_list
    message: str
    details: str
    received: Any = None

    def describe(self) -> str:
        where = f"node {self.node_id} ({self.class_type})"
        if self.input_name:
            where += f', input "{self.input_name}"'
        text = self.message.rstrip(".")
        if self.details and self.details != self.input_name:
            text += f": {self.details}"
        return f"{where}: {text}"

    def to_dict(self) -> dict[str, Any]:
        out = {
            "node_id": self.node_id,
            "class_type": self.class_type,
            "type": self.kind,
            "input": self.input_name,
            "message": self.message,
            "details": self.details,
        }
        return {k: v for k, v in out.items() if v not in (None, "")}


@dataclass(frozen=True)
class MissingModel:
    problem: Problem
    file: str
    folder: str | None
    available: tuple[str, ...]

    def describe(self) -> str:
        where = f"node {self.problem.node_id} ({self.problem.class_type})"
        if self.problem.input_name:
            where += f', input "{self.problem.input_name}"'
        folder = f' in models folder "{self.folder}"' if self.folder else ""
        if self.available:
            shown = ", ".join(self.available[:MAX_LISTED])
            more = len(self.available) - MAX_LISTED
            shown += f" and {more} more" if more > 0 else ""
            have = f"available: {shown}"
        else:
            have = "no models are installed there"
        return f'{where}: model file "{self.file}" is not installed{folder}; {have}'


def problems_from(node_errors: Mapping[str, Any]) -> list[Problem]:
    out: list[Problem] = []
    for node_id, entry in node_errors.items():
        if not isinstance(entry, Mapping):
            continue
        class_type = str(entry.get("class_type", "?"))
        for err in entry.get("errors") or ():
            if not isinstance(err, Mapping):
                continue
            extra = err.get("extra_info") or {}
            input_name = extra.get("input_name") if isinstance(extra, Mapping) else None
            out.append(
                Problem(
                    node_id=str(node_id),
                    class_type=class_type,
                    input_name=str(input_name) if input_name is not None else None,
                    kind=str(err.get("type", "invalid")),
                    message=str(err.get("message", "invalid")),
                    details=str(err.get("details", "")),
                    received=extra.get("received_value") if isinstance(extra, Mapping) else None,
                )
            )
    return out


def model_folder_for(
    options: Sequence[str], input_name: str | None, model_files: Mapping[str, Sequence[str]]
) -> str | None:
    """The model folder whose file list is this combo's option list, if any."""
    wanted = sorted(options)
    matches = [name for name, files in model_files.items() if sorted(files) == wanted]
    if len(matches) == 1:
        return matches[0]
    hint = INPUT_FOLDER_HINTS.get(input_name or "")
    if hint is not None and (hint in matches or (not matches and not options)):
        return hint
    return None


def missing_model(
    problem: Problem, options_for: OptionsLookup, model_files: Mapping[str, Sequence[str]]
) -> MissingModel | None:
    """A ``value_not_in_list`` on a combo that lists a model folder is a missing model."""
    if problem.kind != "value_not_in_list" or problem.input_name is None:
        return None
    if not isinstance(problem.received, str):
        return None
    options = options_for(problem.class_type, problem.input_name)
    if options is None:
        return None
    folder = model_folder_for(options, problem.input_name, model_files)
    looks_like_model = PurePosixPath(problem.received).suffix.lower() in MODEL_SUFFIXES
    if folder is None and not looks_like_model:
        return None
    return MissingModel(problem, problem.received, folder, tuple(sorted(options)))


def explain(
    error: Mapping[str, Any] | None,
    node_errors: Mapping[str, Any],
    options_for: OptionsLookup,
    model_files: Mapping[str, Sequence[str]],
) -> JobFailed | None:
    """``None`` when the workflow is valid; otherwise the one error the job fails with."""
    problems = problems_from(node_errors)
    if not problems:
        if error is None:
            return None
        return _workflow_error(error)
    missing = [m for m in (missing_model(p, options_for, model_files) for p in problems) if m]
    details: dict[str, Any] = {"problems": [p.to_dict() for p in problems]}
    if missing:
        first = missing[0]
        details["missing_models"] = [
            {
                "file": m.file,
                "folder": m.folder,
                "node_id": m.problem.node_id,
                "available": list(m.available),
            }
            for m in missing
        ]
        text = "; ".join(m.describe() for m in missing)
        return JobFailed(
            ErrorType.MISSING_MODEL, text, node_id=first.problem.node_id, details=details
        )
    text = "workflow failed validation: " + "; ".join(p.describe() for p in problems)
    return JobFailed(ErrorType.INVALID_WORKFLOW, text, node_id=problems[0].node_id, details=details)


def _workflow_error(error: Mapping[str, Any]) -> JobFailed:
    kind = str(error.get("type", "invalid_prompt"))
    extra = error.get("extra_info") or {}
    node_id = extra.get("node_id") if isinstance(extra, Mapping) else None
    if kind == "missing_node_type" and isinstance(extra, Mapping) and extra.get("class_type"):
        text = (
            f'node {node_id}: unknown node class "{extra["class_type"]}" (not a ComfyUI node '
            "and not provided by an installed custom node)"
        )
    elif kind == "prompt_no_outputs":
        text = (
            "the workflow has no output node (e.g. SaveImage): nothing would be produced; "
            "export it with 'Save (API)' from a workflow that saves something"
        )
    else:
        text = str(error.get("message", "invalid workflow"))
        if error.get("details"):
            text += f": {error['details']}"
    return JobFailed(
        ErrorType.INVALID_WORKFLOW,
        text,
        node_id=str(node_id) if node_id is not None else None,
        details={"comfyui_error": kind},
    )
