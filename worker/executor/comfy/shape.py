"""Check a workflow's shape before ComfyUI sees it, and copy it for one run.

ComfyUI's ``validate_prompt`` assumes an API-format prompt: it indexes ``prompt[id]["inputs"]``
and follows links without checking them, so a malformed workflow surfaces as a ``KeyError`` with
a node id and nothing else. These checks name what is wrong instead. They also catch the most
common mistake: sending the UI format (``{"nodes": [...], "links": [...]}``) instead of the API
format.

``copy_for_run`` keeps only what a node is (``class_type``, ``inputs``, ``_meta``): ComfyUI trusts
other keys of a prompt's nodes, such as ``is_changed``, which stands in for the content hash
``LoadImage`` computes, so a job that set it could put its own image in the cache under another
job's file and be served to that job.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from worker.errors import ErrorType, JobFailed
from worker.executor.comfy import graph

NODE_KEYS = ("class_type", "inputs", "_meta")  # what the API format's nodes hold


def _fail(message: str, node_id: str | None = None) -> JobFailed:
    return JobFailed(ErrorType.INVALID_WORKFLOW, message, node_id=node_id)


def check_shape(workflow: Mapping[str, Any]) -> None:
    """Raise ``JobFailed(invalid_workflow)`` unless ``workflow`` is an API-format prompt."""
    if not isinstance(workflow, Mapping) or not workflow:
        raise _fail("the workflow must be a non-empty object of node id -> node")
    if "nodes" in workflow and "links" in workflow:
        raise _fail(
            "this is a workflow in ComfyUI's UI format; export it with 'Save (API)' "
            "(or 'Export (API)') and send that instead"
        )
    for node_id, node in workflow.items():
        if not isinstance(node, Mapping):
            raise _fail(f"node {node_id} must be an object with class_type and inputs", node_id)
        if not isinstance(node.get("class_type"), str) or not node["class_type"]:
            raise _fail(f"node {node_id} has no class_type", node_id)
        inputs = node.get("inputs", {})
        if not isinstance(inputs, Mapping):
            raise _fail(f"node {node_id} ({node['class_type']}): inputs must be an object", node_id)
        for name, value in inputs.items():
            _check_link(workflow, str(node_id), node["class_type"], str(name), value)
    graph.check_graph(workflow)


def _check_link(
    workflow: Mapping[str, Any], node_id: str, class_type: str, name: str, value: Any
) -> None:
    # In the API format a list value is a link: [source node id, output index].
    if not isinstance(value, list):
        return
    where = f'node {node_id} ({class_type}), input "{name}"'
    if len(value) != 2 or not isinstance(value[1], int) or isinstance(value[1], bool):
        raise _fail(f"{where}: a link must be [node id, output index], got {value!r}", node_id)
    source = value[0]
    if not isinstance(source, str) or source not in workflow:
        raise _fail(f"{where}: links to node {source!r}, which is not in the workflow", node_id)


def copy_for_run(workflow: Mapping[str, Any]) -> dict[str, Any]:
    """A deep, plain copy: ComfyUI converts input values in place and caches state on nodes."""
    try:
        copied: dict[str, Any] = json.loads(json.dumps(workflow))
    except (TypeError, ValueError) as exc:
        raise _fail(f"the workflow is not plain JSON: {exc}") from exc
    # Every node needs an inputs object (ComfyUI indexes it unconditionally), and nothing else
    # of a job's choosing reaches ComfyUI.
    return {
        node_id: {"inputs": {}} | {k: node[k] for k in NODE_KEYS if k in node}
        for node_id, node in copied.items()
    }
