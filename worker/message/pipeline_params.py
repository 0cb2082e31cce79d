"""One declared pipeline parameter: its type, bounds, and the node inputs it sets.

``Param.check`` validates a value from a job message (JSON types, strictly); ``Param.from_text``
reads one from a command line (``--param width=768``) and then checks it the same way.

A ``model`` parameter takes a model the job brings: a ``gs://`` or ``https://`` URI, with its
hash as ``{"uri": ..., "sha256": ...}`` or as ``URI#sha256=HEX`` (required for https). It becomes
an entry of the job's ``models`` in the declared ``folder`` (checked against the allow-lists like
any other) and the node inputs it sets get the file name the worker gives it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, cast

from worker.message.bounded import echo

ParamType = Literal["int", "float", "string", "bool", "seed", "file", "model"]
TYPES: tuple[ParamType, ...] = ("int", "float", "string", "bool", "seed", "file", "model")
SEED_MAX = 2**64 - 1  # KSampler's own maximum
DEFAULT_MAX_LENGTH = 10_000
_SPEC_KEYS = {
    "type",
    "sets",
    "default",
    "required",
    "min",
    "max",
    "step",
    "choices",
    "max_length",
    "description",
    "folder",
}
_FOLDER = re.compile(r"[a-z][a-z0-9_]{0,63}")
_SHA256 = re.compile(r"[0-9a-fA-F]{64}")
MAX_MODEL_URI = 2048


class ParamError(ValueError):
    """A value (or a declaration) is not acceptable; the message says what is."""


def _json_type(value: Any) -> str:
    names = {
        bool: "boolean",
        int: "integer",
        float: "number",
        str: "string",
        list: "array",
        dict: "object",
        type(None): "null",
    }
    return names.get(type(value), type(value).__name__)


@dataclass(frozen=True)
class Param:
    name: str
    type: ParamType
    targets: tuple[tuple[str, str], ...]
    default: Any = None
    required: bool = False
    min: float | None = None
    max: float | None = None
    step: int | None = None
    choices: tuple[Any, ...] | None = None
    max_length: int = DEFAULT_MAX_LENGTH
    description: str = ""
    folder: str | None = None  # model parameters: the ComfyUI model folder

    def describe(self) -> str:
        """``int 64..2048, multiple of 8, default 512`` and the like."""
        if self.type == "model":
            need = "required" if self.required else f"default {self.default!r}"
            return (
                f'model for {self.folder}: "gs://..." or "https://...#sha256=HEX" or '
                f'{{"uri", "sha256"}}, {need}'
            )
        parts: list[str] = [self.type]
        if self.choices is not None:
            parts.append("one of " + ", ".join(map(str, self.choices)))
        elif self.type == "seed":
            parts.append(f"0..{SEED_MAX}")
        elif self.min is not None or self.max is not None:
            lo = "" if self.min is None else _number(self.min)
            hi = "" if self.max is None else _number(self.max)
            parts.append(f"{lo}..{hi}")
        if self.step:
            parts.append(f"multiple of {self.step}")
        if self.required:
            parts.append("required")
        elif self.type == "seed" and self.default is None:
            parts.append("default random")
        else:
            parts.append(f"default {self.default!r}")
        return ", ".join(parts)

    def check(self, value: Any) -> Any:
        """Return ``value`` in its canonical form, or raise ``ParamError``."""
        if self.type == "model":
            return self._model(value)
        want = f"parameter {echo(self.name)} must be {self.describe()}; got {echo(value)}"
        try:
            value = self._typed(value, f"{want} ({_json_type(value)})")
            out_of_range = (self.min is not None and value < self.min) or (
                self.max is not None and value > self.max
            )
            off_step = bool(self.step and value % self.step)
        except (OverflowError, ValueError, TypeError) as exc:  # e.g. an int too big for a float
            if isinstance(exc, ParamError):
                raise
            raise ParamError(want) from None
        if out_of_range or off_step:
            raise ParamError(want)
        if self.choices is not None and value not in self.choices:
            raise ParamError(want)
        return value

    def _typed(self, value: Any, want: str) -> Any:
        """``value`` if its JSON type fits (ints for integral floats, floats for ints)."""
        if isinstance(value, bool):
            if self.type != "bool":
                raise ParamError(want)
            return value
        if self.type in ("int", "seed"):
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            if not isinstance(value, int) or (self.type == "seed" and not 0 <= value <= SEED_MAX):
                raise ParamError(want)
            return value
        if self.type == "float":
            if not isinstance(value, int | float) or not math.isfinite(value):
                raise ParamError(want)
            return float(value)
        if self.type == "bool" or not isinstance(value, str):
            raise ParamError(want)
        if len(value) > self.max_length:
            raise ParamError(f"{want}: at most {self.max_length} characters")
        if self.type == "file" and not _relative_name(value):
            raise ParamError(f"{want}: a relative file name without '..'")
        return value

    def _model(self, value: Any) -> dict[str, Any]:
        """``{"uri", "sha256"}`` (sha256 None when not given); the allow-lists come later."""
        want = f"parameter {echo(self.name)} must be a {self.describe()}; got {echo(value)}"
        if isinstance(value, str):
            uri, _, fragment = value.partition("#")
            sha: Any = fragment.removeprefix("sha256=") if fragment else None
            if fragment and not fragment.startswith("sha256="):
                raise ParamError(want)
        elif isinstance(value, dict) and "uri" in value and set(value) <= {"uri", "sha256"}:
            uri, sha = value["uri"], value.get("sha256")
        else:
            raise ParamError(want)
        if (
            not isinstance(uri, str)
            or not uri.startswith(("gs://", "https://"))
            or len(uri) > MAX_MODEL_URI
            or (sha is not None and (not isinstance(sha, str) or not _SHA256.fullmatch(sha)))
        ):
            raise ParamError(want)
        return {"uri": uri, "sha256": sha.lower() if sha else None}

    def model_entry(self, value: dict[str, Any]) -> dict[str, Any]:
        """The ``models`` entry a checked model value becomes, named after its hash (or URI),
        so that one name never stands for two files."""
        uri, sha = value["uri"], value["sha256"]
        digest = sha or hashlib.sha256(uri.encode()).hexdigest()
        base = uri.split("?", 1)[0].rsplit("/", 1)[-1].lower()
        ext = next((e for e in _MODEL_EXTENSIONS if base.endswith(e)), ".safetensors")
        if uri.startswith("https://") and ext not in (".safetensors", ".sft"):
            ext = ".safetensors"
        entry = {"uri": uri, "folder": self.folder, "name": f"{self.name}-{digest[:16]}{ext}"}
        return entry | ({"sha256": sha} if sha else {})

    def from_text(self, text: str) -> Any:
        """Read a command-line value: ints accept ``0x`` hex (colours), bools true/false."""
        try:
            if self.type in ("int", "seed"):
                return self.check(int(text, 0))
            if self.type == "float":
                return self.check(float(text))
        except ValueError as exc:
            if isinstance(exc, ParamError):
                raise
            raise ParamError(
                f"parameter {self.name!r} must be {self.describe()}; got {echo(text)}"
            ) from exc
        if self.type == "bool":
            lowered = text.strip().lower()
            if lowered not in ("true", "false", "1", "0", "yes", "no"):
                raise ParamError(f"parameter {self.name!r} must be true or false; got {echo(text)}")
            return self.check(lowered in ("true", "1", "yes"))
        return self.check(text)


_MODEL_EXTENSIONS = (".safetensors", ".sft", ".ckpt", ".pt2", ".pt", ".bin", ".pth", ".pkl")


def _number(value: float) -> str:
    return str(value) if isinstance(value, int) else f"{value:g}"


def _relative_name(value: str) -> bool:
    parts = value.split("/")
    return (
        bool(value)
        and not value.startswith("/")
        and "\\" not in value
        and all(part not in ("", ".", "..") for part in parts)
    )


def _targets(sets: Any, workflow: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    if not isinstance(sets, list) or not sets or not all(isinstance(s, str) for s in sets):
        raise ParamError("'sets' must be a non-empty list of \"NODE_ID.INPUT\" strings")
    out: list[tuple[str, str]] = []
    for target in sets:
        node_id, _, input_name = target.rpartition(".")
        node = workflow.get(node_id)
        if node is None:
            raise ParamError(f"'sets' names node {node_id!r}, which the workflow lacks")
        if input_name not in node["inputs"]:
            raise ParamError(
                f"'sets' names input {input_name!r} of node {node_id!r} "
                f"({node['class_type']}), which has: {sorted(node['inputs'])}"
            )
        if isinstance(node["inputs"][input_name], list):
            raise ParamError(f"'sets' names {target!r}, which is a link to another node")
        out.append((node_id, input_name))
    return tuple(out)


def _check_spec(spec: dict[str, Any]) -> None:
    """Reject declarations whose keys or bounds are malformed, before any value is checked."""
    if extra := sorted(spec.keys() - _SPEC_KEYS):
        raise ParamError(f"unknown keys {extra}; allowed: {sorted(_SPEC_KEYS)}")
    ptype = spec.get("type")
    if ptype not in TYPES:
        raise ParamError(f"'type' is {ptype!r}; allowed: {', '.join(TYPES)}")
    if ptype not in ("int", "float", "seed") and {"min", "max", "step"} & spec.keys():
        raise ParamError(f"'min', 'max' and 'step' apply to numbers, not to {ptype}")
    _check_folder(ptype, spec)
    for key in ("min", "max"):
        if key in spec and (not isinstance(spec[key], int | float) or isinstance(spec[key], bool)):
            raise ParamError(f"'{key}' must be a number")
    for key in ("step", "max_length"):
        value = spec.get(key, 1)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ParamError(f"'{key}' must be a whole number of at least 1")
    choices = spec.get("choices")
    if choices is not None and (not isinstance(choices, list) or not choices):
        raise ParamError("'choices' must be a non-empty list")
    required = spec.get("required", False)
    if not isinstance(required, bool):
        raise ParamError("'required' must be true or false")
    if required and "default" in spec:
        raise ParamError("give either a 'default' or \"required\": true, not both")
    if "default" not in spec and not required and ptype != "seed":
        raise ParamError("needs a 'default' (only seeds may omit it: they default to random)")


def _check_folder(ptype: Any, spec: dict[str, Any]) -> None:
    if (ptype == "model") != ("folder" in spec):
        raise ParamError("a model parameter needs a 'folder' (and only model parameters have one)")
    folder = spec.get("folder")
    if ptype == "model" and not (isinstance(folder, str) and _FOLDER.fullmatch(folder)):
        raise ParamError("'folder' must be a ComfyUI model folder such as loras")


def parse_param(name: str, spec: Any, workflow: Mapping[str, Any]) -> Param:
    """Build a ``Param`` from its declaration in a pipeline file, checking it fully."""
    if not isinstance(spec, dict):
        raise ParamError("the declaration must be an object")
    _check_spec(spec)
    choices = spec.get("choices")
    param = Param(
        name=name,
        type=cast(ParamType, spec["type"]),
        targets=_targets(spec.get("sets"), workflow),
        required=spec.get("required", False),
        min=spec.get("min"),
        max=spec.get("max"),
        step=spec.get("step"),
        choices=tuple(choices) if choices is not None else None,
        max_length=spec.get("max_length", DEFAULT_MAX_LENGTH),
        description=str(spec.get("description", "")),
        folder=spec.get("folder"),
    )
    default = spec.get("default")
    if default is None:
        return param
    try:
        checked = param.check(default)
    except ParamError as exc:
        raise ParamError(f"the default does not fit the declaration: {exc}") from exc
    return dataclasses.replace(param, default=checked)
