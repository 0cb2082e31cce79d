"""Named workflows with declared parameters: the files in ``pipelines/``.

A pipeline file ``pipelines/<name>.json`` holds an API-format ComfyUI workflow and the parameters a
job may set, each with a type, a default (or ``"required": true``), bounds or choices, and the node
inputs it sets (``"sets": ["3.seed"]`` is input ``seed`` of node ``3``)::

    {"description": "...", "workflow": {...},
     "params": {"width": {"type": "int", "default": 512, "min": 64, "max": 2048, "step": 8,
                          "sets": ["5.width"], "description": "..."}}}

Types: ``int``, ``float``, ``string``, ``bool``, ``seed`` (an int; random when omitted),
``file`` (the name of one of the job's input files) and ``model`` (a model the job brings, by URI,
for the declared ``folder``: it becomes a ``models`` entry and the node inputs get its file name).
A pipeline may also declare a default ``output`` (``{"format": "webp", "quality": 90}``). Files
are checked when the catalog loads, so a broken pipeline stops the worker at start-up rather
than failing jobs one by one.
"""

from __future__ import annotations

import copy
import difflib
import hashlib
import json
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from worker.errors import ConfigError, ErrorType, JobFailed
from worker.message.bounded import echo
from worker.message.job import OutputFormat
from worker.message.pipeline_params import Param, ParamError, parse_param
from worker.models.spec import redact
from worker.record.output_format import check_output

_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
_FILE_KEYS = {"description", "workflow", "params", "output"}


SEED_BOUND = 2**53  # a drawn seed stays exact for JSON readers in any language


def random_seed() -> int:
    """A seed that JSON readers in any language keep exact (below 2**53)."""
    return secrets.randbelow(SEED_BOUND)


def keyed_seed(key: str, name: str) -> int:
    """The seed of parameter ``name`` for the job ``key`` names: as unpredictable across jobs
    as a random one, and the same on every delivery of one job. A redelivered job (after a
    crash, or a failed upload) renders the same workflow, so the outputs an earlier attempt
    kept (they are write-once) and the ones this attempt adds come from one seed, the one its
    result's ``params`` names."""
    digest = hashlib.sha256(f"{len(key)}:{key}:{name}".encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(digest[:8], "big") % SEED_BOUND


class PipelineError(ConfigError):
    """A pipeline file is unreadable or inconsistent; the message names the file and the fix."""


@dataclass(frozen=True)
class Rendered:
    """A pipeline turned into a workflow. ``params`` has every parameter: the job's values, the
    defaults for the rest, and the seed that was drawn when none was given (a model's URI
    without its query string). ``models`` are the entries its model parameters add to the
    job's, ``output`` the pipeline's default output format."""

    workflow: dict[str, Any]
    params: dict[str, Any]
    models: list[dict[str, Any]] = field(default_factory=list)
    output: OutputFormat | None = None


@dataclass(frozen=True)
class Pipeline:
    name: str
    description: str
    workflow: Mapping[str, Any]
    params: Mapping[str, Param]
    output: OutputFormat | None = None

    def allowed(self) -> str:
        """One line per parameter, for error messages and ``python -m worker pipelines``."""
        return "; ".join(f"{p.name} ({p.describe()})" for p in self.params.values())

    def suggest(self, key: Any) -> str | None:
        """The declared parameter ``key`` was probably meant to be (``widht`` -> ``width``)."""
        close = difflib.get_close_matches(key, self.params, n=1) if isinstance(key, str) else []
        return close[0] if close else None

    def unknown(self, key: Any) -> str:
        """``unknown parameter 'widht'; did you mean 'width'?`` (without the question when no
        declared name is close)."""
        close = self.suggest(key)
        return f"unknown parameter {echo(key)}" + (f"; did you mean {close!r}?" if close else "")


def _load_one(path: Path) -> Pipeline:
    name = path.stem
    where = f"pipeline file {path}"
    if not _NAME.fullmatch(name):
        raise PipelineError(f"{where}: the name must match {_NAME.pattern}")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PipelineError(f"{where}: not readable JSON: {exc}") from exc
    if not isinstance(doc, dict) or not {"workflow", "params"} <= doc.keys():
        raise PipelineError(f"{where}: must be an object with 'workflow' and 'params'")
    if extra := sorted(doc.keys() - _FILE_KEYS):
        raise PipelineError(f"{where}: unknown keys {extra}; allowed: {sorted(_FILE_KEYS)}")
    workflow, declared = doc["workflow"], doc["params"]
    if not isinstance(workflow, dict) or not workflow:
        raise PipelineError(f"{where}: 'workflow' must be a non-empty API-format prompt")
    for node_id, node in workflow.items():
        if not (
            isinstance(node, dict)
            and isinstance(node.get("class_type"), str)
            and isinstance(node.get("inputs"), dict)
        ):
            raise PipelineError(f"{where}: node {node_id!r} needs 'class_type' and 'inputs'")
    if not isinstance(declared, dict):
        raise PipelineError(f"{where}: 'params' must be an object of parameter declarations")
    params: dict[str, Param] = {}
    for pname, spec in declared.items():
        try:
            params[pname] = parse_param(pname, spec, workflow)
        except ParamError as exc:
            raise PipelineError(f"{where}: parameter {pname!r}: {exc}") from exc
    description = doc.get("description", "")
    if not isinstance(description, str):
        raise PipelineError(f"{where}: 'description' must be a string")
    return Pipeline(name, description, workflow, params, _output(doc, where))


def _output(doc: dict[str, Any], where: str) -> OutputFormat | None:
    """The pipeline's default ``output`` format, if it declares one."""
    if "output" not in doc:
        return None
    if not isinstance(doc["output"], dict) or "prefix" in doc["output"]:
        raise PipelineError(f"{where}: 'output' must be an object of format fields, no prefix")
    try:
        return check_output(doc["output"])
    except JobFailed as exc:
        raise PipelineError(f"{where}: {exc.message}") from exc


class PipelineCatalog:
    """The pipelines of one directory, loaded and checked once."""

    def __init__(
        self, pipelines: Mapping[str, Pipeline], seed: Callable[[], int] | None = None
    ) -> None:
        """``seed`` draws every omitted seed (tests pin it); by default a render with a ``key``
        derives it from the key (``keyed_seed``) and one without draws it at random."""
        self._pipelines = dict(sorted(pipelines.items()))
        self._seed = seed

    @classmethod
    def load(cls, directory: Path, seed: Callable[[], int] | None = None) -> PipelineCatalog:
        """Load every ``*.json`` in ``directory``. Raises ``PipelineError`` naming the file at
        fault; a missing directory is an error too, since a worker told to use one needs it."""
        if not directory.is_dir():
            raise PipelineError(f"pipelines directory {directory} does not exist (PIPELINES_DIR)")
        found = {p.stem: _load_one(p) for p in sorted(directory.glob("*.json"))}
        return cls(found, seed)

    def names(self) -> list[str]:
        return list(self._pipelines)

    def get(self, name: str) -> Pipeline:
        """The pipeline called ``name``; ``JobFailed(invalid_job)`` listing the others if none."""
        pipeline = self._pipelines.get(name) if isinstance(name, str) else None
        if pipeline is None:
            available = ", ".join(self._pipelines) or "(none installed)"
            raise JobFailed(
                ErrorType.INVALID_JOB, f"unknown pipeline {echo(name)}; available: {available}"
            )
        return pipeline

    def render(self, name: str, params: Mapping[str, Any], key: str | None = None) -> Rendered:
        """Fill the pipeline's workflow with ``params`` (defaults for the rest, a seed unless one
        is given: derived from ``key``, the job's identity, when there is one, else random).
        Every problem found is reported in one ``invalid_job`` message that says what is
        allowed."""
        pipeline = self.get(name)
        if not isinstance(params, Mapping):
            raise JobFailed(
                ErrorType.INVALID_JOB,
                f"'params' of pipeline {name!r} must be an object; parameters: "
                + pipeline.allowed(),
            )
        unknown = [key for key in sorted(params) if key not in pipeline.params]
        problems = [pipeline.unknown(key) for key in unknown[:10]]
        if len(unknown) > 10:
            problems.append(f"and {len(unknown) - 10} more unknown parameters")
        resolved: dict[str, Any] = {}
        for pname, param in pipeline.params.items():
            try:
                resolved[pname] = self._resolve(param, params, key)
            except ParamError as exc:
                problems.append(str(exc))
        if problems:
            message = f"pipeline {name!r}: " + "; ".join(problems)
            if any(not p.startswith("parameter ") for p in problems):
                message += f". Parameters: {pipeline.allowed()}"
            raise JobFailed(ErrorType.INVALID_JOB, message, details={"problems": problems})
        workflow = copy.deepcopy(dict(pipeline.workflow))
        models: list[dict[str, Any]] = []
        for pname, param in pipeline.params.items():
            value = resolved[pname]
            if param.type == "model":
                entry = param.model_entry(value)
                models.append(entry)
                value = entry["name"]
                resolved[pname] = {**resolved[pname], "uri": redact(entry["uri"]), "name": value}
            for node_id, input_name in param.targets:
                workflow[node_id]["inputs"][input_name] = value
        return Rendered(workflow, resolved, models, pipeline.output)

    def _resolve(self, param: Param, given: Mapping[str, Any], key: str | None) -> Any:
        if param.name in given and given[param.name] is not None:
            return param.check(given[param.name])
        if param.required:
            raise ParamError(f"missing required parameter {param.name!r}")
        if param.type == "seed" and param.default is None:
            if self._seed is not None:
                return self._seed()
            return random_seed() if key is None else keyed_seed(key, param.name)
        return param.default
