"""Bounds on a workflow's graph, checked before ComfyUI sees it. Pure code.

ComfyUI's bookkeeping grows with each node's ancestry: before anything runs, its cache computes
a signature per node over all of that node's ancestors (``CacheKeySetInputSignature``, for every
node in the prompt, linked to an output or not), and its validation and ancestry walks recurse
once per link on a path. So a message of a few hundred kilobytes (a chain of 900 nodes and 2,000
nodes hanging off its end) holds the worker for over a minute in pure Python, where neither an
interrupt nor ``JOB_TIMEOUT_S`` can reach it, and a chain near 1,000 links exhausts the
recursion limit. The limits below are far above real workflows (hundreds of nodes, paths of a few
dozen links) and keep that bookkeeping to seconds:

- ``MAX_NODES`` nodes;
- ``MAX_DEPTH`` links on the longest path;
- ``MAX_ANCESTRY`` for the sum over nodes of how many ancestors each has (what the signatures
  cost; about 25 us each on one core).

A cycle is refused here too, naming its nodes (ComfyUI would report it per output, three times).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from worker.errors import ErrorType, JobFailed
from worker.message.bounded import clip

MAX_NODES = 10_000
MAX_DEPTH = 500
MAX_ANCESTRY = 500_000


def _fail(message: str, node_id: str | None = None) -> JobFailed:
    return JobFailed(ErrorType.INVALID_WORKFLOW, message, node_id=node_id)


def parents(workflow: Mapping[str, Any]) -> dict[str, list[str]]:
    """node id -> the ids it links from (a shape-checked workflow: every link is valid)."""
    out: dict[str, list[str]] = {}
    for node_id, node in workflow.items():
        inputs = node.get("inputs") or {}
        out[str(node_id)] = sorted(
            {str(v[0]) for v in inputs.values() if isinstance(v, list) and len(v) == 2}
        )
    return out


def topological(links: Mapping[str, list[str]]) -> list[str]:
    """The node ids, each after all its parents; ``JobFailed`` naming a cycle if there is one."""
    children: dict[str, list[str]] = {n: [] for n in links}
    waiting = {n: len(ps) for n, ps in links.items()}
    for node, ps in links.items():
        for p in ps:
            children[p].append(node)
    ready = [n for n, count in waiting.items() if count == 0]
    order: list[str] = []
    while ready:
        node = ready.pop()
        order.append(node)
        for child in children[node]:
            waiting[child] -= 1
            if waiting[child] == 0:
                ready.append(child)
    if len(order) < len(links):
        stuck = sorted(n for n, count in waiting.items() if count > 0)
        shown = ", ".join(clip(n, 40) for n in stuck[:10]) + (" ..." if len(stuck) > 10 else "")
        raise _fail(
            f"the links form a cycle: nodes {shown} depend on each other; a node's inputs "
            "can't come from its own outputs",
            stuck[0],
        )
    return order


def check_graph(
    workflow: Mapping[str, Any],
    max_nodes: int = MAX_NODES,
    max_depth: int = MAX_DEPTH,
    max_ancestry: int = MAX_ANCESTRY,
) -> None:
    """Raise ``JobFailed(invalid_workflow)`` for a graph too large, too deep or cyclic."""
    if len(workflow) > max_nodes:
        raise _fail(
            f"the workflow has {len(workflow)} nodes; the limit is {max_nodes}: split it into "
            "several jobs"
        )
    links = parents(workflow)
    order = topological(links)
    depth: dict[str, int] = {}
    ancestors: dict[str, int] = {}  # a bit set per node: bit i is the i-th node in ``order``
    bit = {n: 1 << i for i, n in enumerate(order)}
    total = 0
    for node in order:
        ps = links[node]
        depth[node] = 1 + max((depth[p] for p in ps), default=-1)
        if depth[node] > max_depth:
            raise _fail(
                f"node {clip(node, 100)} is {depth[node]} links from the start of the workflow; "
                f"the limit is {max_depth}: shorten the chain of nodes",
                node,
            )
        mine = 0
        for p in ps:
            mine |= ancestors[p] | bit[p]
        ancestors[node] = mine
        total += mine.bit_count()
        if total > max_ancestry:
            raise _fail(
                f"the workflow is too large for one job: its nodes have {total}+ ancestors in "
                f"all (counting each node's), the limit is {max_ancestry}; use fewer nodes, or "
                "fewer nodes downstream of long chains",
                node,
            )
