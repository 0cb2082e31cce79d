"""A broken pipeline file stops loading with a message naming the file and the fix."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from worker.errors import ConfigError
from worker.message.pipelines import PipelineCatalog, PipelineError

WORKFLOW = {
    "1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "color": 0}},
    "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "x"}},
}


def _write(directory: Path, name: str, doc: Any) -> Path:
    path = directory / f"{name}.json"
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return path


def _load_error(tmp_path: Path, doc: Any, name: str = "p") -> str:
    _write(tmp_path, name, doc)
    with pytest.raises(PipelineError) as info:
        PipelineCatalog.load(tmp_path)
    assert f"{name}.json" in str(info.value)
    return str(info.value)


def _with_param(spec: dict[str, Any]) -> dict[str, Any]:
    return {"workflow": WORKFLOW, "params": {"w": spec}}


def test_a_good_file_loads(tmp_path: Path) -> None:
    _write(tmp_path, "p", _with_param({"type": "int", "default": 8, "sets": ["1.width"]}))
    (tmp_path / "notes.txt").write_text("ignored")
    catalog = PipelineCatalog.load(tmp_path)
    assert catalog.names() == ["p"]
    assert catalog.render("p", {"w": 3}).workflow["1"]["inputs"]["width"] == 3


def test_pipeline_errors_are_configuration_errors(tmp_path: Path) -> None:
    # The CLI turns ConfigError into exit code 78 with the message.
    assert issubclass(PipelineError, ConfigError)
    with pytest.raises(PipelineError, match="does not exist"):
        PipelineCatalog.load(tmp_path / "missing")


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        ("{not json", "not readable JSON"),
        ([1, 2], "must be an object with 'workflow' and 'params'"),
        ({"workflow": WORKFLOW}, "must be an object with 'workflow' and 'params'"),
        ({"workflow": WORKFLOW, "params": {}, "parms": {}}, "unknown keys ['parms']"),
        ({"workflow": {}, "params": {}}, "'workflow' must be a non-empty"),
        ({"workflow": {"1": {"inputs": {}}}, "params": {}}, "node '1' needs 'class_type'"),
        ({"workflow": WORKFLOW, "params": []}, "'params' must be an object"),
        ({"workflow": WORKFLOW, "params": {}, "description": 3}, "'description' must be"),
        ({"workflow": WORKFLOW, "params": {}, "output": {"format": "gif"}}, "png, webp, jpeg"),
        ({"workflow": WORKFLOW, "params": {}, "output": {"prefix": "x"}}, "no prefix"),
    ],
)
def test_malformed_files(tmp_path: Path, doc: Any, expected: str) -> None:
    assert expected in _load_error(tmp_path, doc)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"type": "integer", "default": 1, "sets": ["1.width"]}, "'type' is 'integer'; allowed"),
        ({"type": "int", "default": 1, "sets": ["9.width"]}, "names node '9'"),
        ({"type": "int", "default": 1, "sets": ["1.wdth"]}, "names input 'wdth' of node '1'"),
        ({"type": "int", "default": 1, "sets": ["2.images"]}, "a link to another node"),
        ({"type": "int", "default": 1, "sets": []}, "'sets' must be a non-empty list"),
        ({"type": "int", "sets": ["1.width"]}, "needs a 'default'"),
        ({"type": "int", "default": 1, "required": True, "sets": ["1.width"]}, "not both"),
        ({"type": "int", "default": 99, "max": 10, "sets": ["1.width"]}, "the default does not"),
        ({"type": "int", "default": 1, "min": "0", "sets": ["1.width"]}, "'min' must be a number"),
        ({"type": "int", "default": 8, "step": 0, "sets": ["1.width"]}, "'step' must be a whole"),
        ({"type": "string", "default": "a", "max": 3, "sets": ["1.width"]}, "apply to numbers"),
        ({"type": "string", "default": "a", "choices": [], "sets": ["1.width"]}, "'choices'"),
        ({"type": "int", "default": 1, "sets": ["1.width"], "help": "x"}, "unknown keys ['help']"),
        ({"type": "bool", "default": 1, "sets": ["1.width"]}, "the default does not fit"),
        ({"type": "int", "default": 1, "required": "yes", "sets": ["1.width"]}, "'required'"),
        ("int", "the declaration must be an object"),
        ({"type": "model", "required": True, "sets": ["1.width"]}, "needs a 'folder'"),
        ({"type": "int", "default": 1, "folder": "loras", "sets": ["1.width"]}, "needs a 'folder'"),
        ({"type": "model", "folder": "../x", "required": True, "sets": ["1.width"]}, "'folder'"),
        ({"type": "model", "folder": "loras", "default": "ftp://x", "sets": ["1.width"]}, "fit"),
    ],
)
def test_bad_parameter_declarations(tmp_path: Path, spec: Any, expected: str) -> None:
    message = _load_error(tmp_path, _with_param(spec))
    assert "parameter 'w'" in message and expected in message


def test_bad_file_names(tmp_path: Path) -> None:
    assert "the name must match" in _load_error(tmp_path, _with_param({}), name="Bad Name")


def test_a_seed_may_omit_its_default(tmp_path: Path) -> None:
    _write(tmp_path, "p", _with_param({"type": "seed", "sets": ["1.color"]}))
    catalog = PipelineCatalog.load(tmp_path, seed=lambda: 5)
    assert catalog.render("p", {}).params == {"w": 5}
