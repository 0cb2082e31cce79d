"""Bare ComfyUI in-process: the limit the worker is measured against. No project code.

    cd COMFYUI_DIR && VENV/bin/python /path/to/bench/bare_comfy.py SPEC.json

What ComfyUI's own ``main.py`` does, minus the HTTP server: parse its arguments, set the
directories, import, build ``PromptServer`` (never started; its ``send_sync`` goes nowhere),
load the node registry, install ``main.py``'s progress hook, build the ``PromptExecutor`` with
the cache ``prompt_worker`` chooses, then run each prompt as ``prompt_worker`` does
(``validate_prompt`` as ``POST /prompt`` does, then ``PromptExecutor.execute``, ``gc.collect()`` and
``soft_empty_cache()`` at most every 10 s), from one long-lived thread as ``main.py`` does.

SPEC.json: ``{"argv": [ComfyUI flags], "checkpoints": dir or null, "prompts": [[kind, prompt]]}``.
Prints one JSON line per event on stdout, times from ``time.time()`` (comparable with the
worker's log lines): ``phase`` (boot phases), ``ready``, ``job`` (``kind``, ``start``, ``end``).
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import sys
import threading
import time
from typing import Any


def emit(event: str, **fields: Any) -> None:
    print(json.dumps({"event": event, **fields}), flush=True)


def main(spec_path: str) -> None:
    with open(spec_path) as f:
        spec = json.load(f)
    sys.path.insert(0, os.getcwd())
    t = time.time()
    import comfy.options

    comfy.options.enable_args_parsing()
    sys.argv = ["main.py", *spec["argv"]]
    import folder_paths  # reads ComfyUI's arguments: after sys.argv is set
    from comfy.cli_args import args

    if spec.get("checkpoints"):
        folder_paths.add_model_folder_path("checkpoints", spec["checkpoints"], True)
    for kind in ("output", "input", "temp", "user"):
        value = getattr(args, f"{kind}_directory", None)
        if value:
            getattr(folder_paths, f"set_{kind}_directory")(value)
    emit("phase", name="args+paths", s=time.time() - t)
    t = time.time()
    import comfy.model_management
    import comfy.utils
    import execution  # noqa: F401  - main.py imports it here (the worker thread uses it)
    import nodes
    import server
    from comfy_execution.progress import get_progress_state
    from comfy_execution.utils import get_executing_context

    emit("phase", name="imports", s=time.time() - t)
    t = time.time()
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    prompt_server = server.PromptServer(loop)
    prompt_server.send_sync = lambda event, data, sid=None: None
    loop.run_until_complete(nodes.init_extra_nodes(init_custom_nodes=True, init_api_nodes=False))
    comfy.model_management.set_cudnn_benchmark()
    emit("phase", name="nodes", s=time.time() - t)

    def hook(
        value: Any, total: Any, preview: Any, prompt_id: Any = None, node_id: Any = None
    ) -> None:
        # main.py's hijack_progress, less the preview image branch.
        context = get_executing_context()
        if prompt_id is None and context is not None:
            prompt_id = context.prompt_id
        if node_id is None and context is not None:
            node_id = context.node_id
        comfy.model_management.throw_exception_if_processing_interrupted()
        progress = {"value": value, "max": total, "prompt_id": prompt_id, "node": node_id}
        get_progress_state().update_progress(node_id, value, total, preview)
        prompt_server.send_sync("progress", progress, None)

    comfy.utils.set_progress_bar_global_hook(hook)
    emit("ready", t=time.time())
    done = threading.Event()
    threading.Thread(target=worker, args=(args, prompt_server, spec["prompts"], done)).start()
    done.wait()


def worker(args: Any, prompt_server: Any, prompts: list[Any], done: threading.Event) -> None:
    """``main.py``'s ``prompt_worker``, fed from a list instead of the HTTP queue."""
    import comfy.model_management as mm
    import execution

    ram, ram_inactive = 0.0, 0.0
    if not args.cache_classic and not args.cache_none and args.cache_lru <= 0:
        ram = min(10.0, max(2.0, mm.total_ram * 0.10 / 1024.0))
        ram_inactive = min(128.0, mm.total_ram / 1024.0)
    cache_type = execution.CacheType.RAM_PRESSURE
    if args.cache_classic:
        cache_type = execution.CacheType.CLASSIC
    elif args.cache_lru > 0:
        cache_type = execution.CacheType.LRU
    elif args.cache_none:
        cache_type = execution.CacheType.NONE
    e = execution.PromptExecutor(
        prompt_server,
        cache_type=cache_type,
        cache_args={"lru": args.cache_lru, "ram": ram, "ram_inactive": ram_inactive},
    )
    vloop = asyncio.new_event_loop()  # the server's loop validates in main.py
    last_gc = time.perf_counter()
    for n, (kind, prompt) in enumerate(prompts):
        start = time.time()
        prompt_id = f"bare-{n}"
        ok, error, outputs, node_errors = vloop.run_until_complete(
            execution.validate_prompt(prompt_id, prompt, None)
        )
        if not ok:
            raise RuntimeError(f"invalid prompt {n}: {error} {node_errors}")
        e.execute(prompt, prompt_id, {"client_id": None}, outputs)
        if not e.success:
            raise RuntimeError(f"prompt {n} failed: {e.status_messages[-1:]}")
        end = time.time()
        emit("job", kind=kind, n=n, start=start, end=end)
        now = time.perf_counter()
        if now - last_gc > 10.0:
            gc.collect()
            mm.soft_empty_cache()
            last_gc = now
    done.set()


if __name__ == "__main__":
    main(sys.argv[1])
