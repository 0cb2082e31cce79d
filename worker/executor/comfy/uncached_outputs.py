"""Make output nodes run in every job while everything upstream stays cached.

ComfyUI caches each node's result under a signature of its inputs. For a server that is what
you want; for a batch worker it is not, for output nodes: a job identical to an earlier one (a
redelivery, a benchmark, a retry) would get SaveImage's cached UI result, which names files the
earlier job wrote and that are gone, and would write nothing. After each run the entries of the
output nodes are dropped, so the next run saves its files again; model loaders, text encoders and
samplers upstream stay cached, which is what keeps the worker warm.

This reaches into ``PromptExecutor.caches.outputs`` (``cache_key_set`` and ``cache``, common to
ComfyUI's classic, LRU and RAM-pressure caches at the pinned release); tests/comfy covers it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def forget(prompt_executor: Any, node_ids: Iterable[str]) -> int:
    """Drop the cached results of ``node_ids`` from the last run; returns how many were held."""
    outputs = prompt_executor.caches.outputs
    key_set = getattr(outputs, "cache_key_set", None)
    store = getattr(outputs, "cache", None)
    if key_set is None or not isinstance(store, dict):
        return 0  # the null cache (--cache-none) keeps nothing
    dropped = 0
    for node_id in node_ids:
        key = key_set.get_data_key(node_id)
        if key is not None and store.pop(key, None) is not None:
            dropped += 1
            for side in ("timestamps", "used_generation", "children"):
                table = getattr(outputs, side, None)
                if isinstance(table, dict):
                    table.pop(key, None)
    return dropped
