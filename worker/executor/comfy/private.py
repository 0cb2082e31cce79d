"""Which of a run's cached node outputs hold the job's own files, so that no later job gets them.

ComfyUI caches a node's outputs under a signature of its inputs: class, literal values, the same
for its ancestors, and a fingerprint only where the class defines one (``LoadImage`` hashes the
file it reads). Every job has an input folder of its own, but a signature doesn't say which: a
node that reads the job's files and fingerprints nothing (``LoadImageDataSetFromFolder``,
``Load3D``, a custom loader) is cached under the file's name alone, and the next job that names
a folder or file the same way is served the earlier job's data.

So after each run, the nodes that may have read the job's files are dropped from the cache with
everything downstream of them: a node with a literal (at any depth of its value) that names one
of the job's staged files or folders, or that is a path annotated ``[input]``, ``[output]`` or
``[temp]``; and, when the job staged files, a node that takes a string through a link (a name
built at run time). Model loaders with literal names, text encoders and samplers stay cached:
the worker stays warm.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from worker.executor.comfy import graph

ANNOTATIONS = ("[input]", "[output]", "[temp]")
NAME_TYPES = frozenset({"STRING", "COMBO", "*"})  # output types that can carry a file name

OutputType = Callable[[str, int], Any]  # (class type, output index) -> ComfyUI's type, or None


def staged_names(input_dir: Path) -> frozenset[str]:
    """Every staged file and folder, relative to the input folder, with ``/`` separators."""
    names: set[str] = set()
    for root, dirs, files in os.walk(input_dir):
        base = Path(root).relative_to(input_dir)
        for name in [*dirs, *files]:
            names.add((base / name).as_posix())
    return frozenset(names)


def _strings(value: Any) -> Iterable[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list | tuple):
        for v in value:
            yield from _strings(v)


def _names_a_file(text: str, staged: frozenset[str]) -> bool:
    text = text.strip()
    if text.endswith(ANNOTATIONS):
        return True
    return bool(staged) and text.strip("/").removeprefix("./") in staged


def _is_link(value: Any) -> bool:
    return isinstance(value, list) and len(value) == 2 and isinstance(value[1], int)


def _takes_a_name(inputs: Mapping[str, Any], prompt: Mapping[str, Any], types: OutputType) -> bool:
    for value in inputs.values():
        if not _is_link(value) or str(value[0]) not in prompt:
            continue
        kind = types(str(prompt[str(value[0])].get("class_type")), value[1])
        if isinstance(kind, list) or (isinstance(kind, str) and kind in NAME_TYPES):
            return True
    return False


def nodes(prompt: Mapping[str, Any], staged: frozenset[str], types: OutputType) -> set[str]:
    """The ids of ``prompt``'s nodes whose cached outputs may hold the job's files."""
    links = graph.parents(prompt)
    readers: set[str] = set()
    for node_id, node in prompt.items():
        inputs = node.get("inputs") or {}
        literals = (v for v in inputs.values() if not _is_link(v))
        if any(_names_a_file(s, staged) for v in literals for s in _strings(v)) or (
            staged and _takes_a_name(inputs, prompt, types)
        ):
            readers.add(str(node_id))
    children: dict[str, list[str]] = {n: [] for n in links}
    for node_id, ps in links.items():
        for p in ps:
            children.setdefault(p, []).append(node_id)
    found, todo = set(readers), list(readers)
    while todo:
        for child in children.get(todo.pop(), ()):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def output_types(node_classes: Mapping[str, Any]) -> OutputType:
    """The lookup over ComfyUI's node registry (``nodes.NODE_CLASS_MAPPINGS``)."""

    def lookup(class_type: str, index: int) -> Any:
        cls = node_classes.get(class_type)
        returns = getattr(cls, "RETURN_TYPES", None) if cls is not None else None
        if not isinstance(returns, tuple | list) or not -len(returns) <= index < len(returns):
            return None
        return returns[index]

    return lookup
