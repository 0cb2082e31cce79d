"""Boot ComfyUI inside this process, once, the way its ``main.py`` does, without a server.

Order matters: ComfyUI's modules read ``comfy.cli_args.args`` at import time, and torch must not
be imported before the allocator is chosen. So: arguments, GPU pre-torch steps, custom nodes'
prestartup scripts, directories, imports, the server object (built, never started, so custom
nodes that add routes still load), the node registry, the executor. Each phase is timed and the
phases are logged as one ``comfyui.booted`` line.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import importlib.util
import logging
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from worker.config import ComfySettings
from worker.errors import ConfigError
from worker.executor.comfy import gpu
from worker.obs import logs

log = logging.getLogger(__name__)
EventSink = Callable[[str, Any], None]
DATASETS = "datasets"  # where in the output folder SaveTrainingDataset's datasets go


@dataclass
class Comfy:
    """Handles on the booted ComfyUI: the modules the executor calls and where files go."""

    execution: Any
    nodes: Any
    folder_paths: Any
    mm: Any  # comfy.model_management
    server: Any  # server.PromptServer, never started
    prompt_executor: Any  # execution.PromptExecutor, warm across jobs
    hook_breaker: Any
    loop: asyncio.AbstractEventLoop  # the server object's; never runs after boot
    job_loop: asyncio.AbstractEventLoop  # validation and execution, one job at a time
    output_dir: Path
    temp_dir: Path
    cuda: bool
    dynamic_vram: bool
    version: str
    phases: dict[str, float] = field(default_factory=dict)
    failed_nodes: list[str] = field(default_factory=list)


class _Phases:
    def __init__(self) -> None:
        self.times: dict[str, float] = {}

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.times[name] = round(time.perf_counter() - started, 3)


def check_dir(comfyui_dir: Path | None) -> Path:
    """The ComfyUI checkout to import, or a ``ConfigError`` that says what to do."""
    if comfyui_dir is None:
        raise ConfigError(
            "COMFYUI_DIR is not set: point it at a ComfyUI checkout "
            "(scripts/install-comfyui DIR installs the pinned release)"
        )
    root = comfyui_dir.expanduser().resolve()
    if not (root / "comfy" / "cli_args.py").is_file() or not (root / "execution.py").is_file():
        raise ConfigError(
            f"COMFYUI_DIR={comfyui_dir} is not a ComfyUI checkout "
            "(no comfy/cli_args.py or execution.py)"
        )
    return root


def _parse_args(flags: tuple[str, ...]) -> Any:
    """Import ``comfy.cli_args`` so that it parses ``flags`` with its own parser and defaults."""
    import comfy.options

    saved = sys.argv
    sys.argv = ["comfyui", *flags]
    comfy.options.enable_args_parsing()
    try:
        from comfy.cli_args import args
    except SystemExit as exc:  # argparse's way of reporting a bad flag
        raise ConfigError(
            f"COMFYUI_ARGS={' '.join(flags)!r} is not valid for ComfyUI "
            f"(exit {exc.code}); see `python main.py --help` in COMFYUI_DIR"
        ) from exc
    finally:
        sys.argv = saved
    return args


def _prestartup(root: Path) -> None:
    """Custom nodes' ``prestartup_script.py`` files, before torch, as main.py runs them."""
    custom = root / "custom_nodes"
    for script in sorted(custom.glob("*/prestartup_script.py")) if custom.is_dir() else ():
        if script.parent.name.endswith(".disabled"):
            continue
        try:
            spec = importlib.util.spec_from_file_location(str(script.with_suffix("")), script)
            assert spec is not None and spec.loader is not None
            spec.loader.exec_module(importlib.util.module_from_spec(spec))
        except Exception as exc:  # ComfyUI logs and goes on; so do we
            logs.event(
                log,
                "comfyui.prestartup_failed",
                logging.WARNING,
                script=str(script),
                error=f"{type(exc).__name__}: {exc}",
            )


def _directories(
    fp: Any, root: Path, settings: ComfySettings, work: Path, extra_folders: dict[str, Path]
) -> tuple[Path, Path]:
    """Model folders (MODELS_DIR, extra_model_paths, manifest cache) and ComfyUI's own dirs."""
    import utils.extra_config

    default_yaml = root / "extra_model_paths.yaml"
    for yaml_path in (default_yaml, settings.extra_model_paths):
        if yaml_path is not None and yaml_path.is_file():
            utils.extra_config.load_extra_path_config(str(yaml_path))
        elif yaml_path is settings.extra_model_paths and yaml_path is not None:
            raise ConfigError(f"EXTRA_MODEL_PATHS={yaml_path} does not exist")
    if settings.models_dir is not None:
        # Mirror ComfyUI's own layout (including legacy names such as clip/ and unet/).
        for name, (paths, _exts) in list(fp.folder_names_and_paths.items()):
            for default in paths:
                rel = os.path.relpath(default, fp.models_dir)
                if not rel.startswith(".."):
                    fp.add_model_folder_path(name, str(settings.models_dir / rel), True)
    for name, folder in extra_folders.items():
        fp.add_model_folder_path(name, str(folder), True)
    output, temp = work / "output", work / "temp"
    for d in (output, temp, work / "input", work / "user"):
        d.mkdir(parents=True, exist_ok=True)
    fp.set_output_directory(str(output))
    fp.set_temp_directory(str(temp))
    fp.set_input_directory(str(work / "input"))
    fp.set_user_directory(str(work / "user"))
    # SaveTrainingDataset writes into the first "datasets" folder, by default one in COMFYUI_DIR:
    # it would outlive the job there, fill the (RAM) disk and be listed to the next job's
    # LoadTrainingDataset. In the output folder it is this job's output, emptied before the next.
    if "datasets" in fp.folder_names_and_paths:
        fp.add_model_folder_path("datasets", str(output / DATASETS), True)
    return output, temp


def _prompt_executor(execution: Any, mm: Any, args: Any, server: Any) -> Any:
    """The executor with the cache main.py's ``prompt_worker`` would choose for these args."""
    ram, ram_inactive = 0.0, 0.0
    if not args.cache_classic and not args.cache_none and args.cache_lru <= 0:
        ram = min(10.0, max(2.0, mm.total_ram * 0.10 / 1024.0))
        ram_inactive = min(128.0, mm.total_ram / 1024.0)
        if len(args.cache_ram) > 0:
            ram = args.cache_ram[0]
        if len(args.cache_ram) > 1:
            ram_inactive = args.cache_ram[1]
    cache_type = execution.CacheType.RAM_PRESSURE
    if args.cache_classic:
        cache_type = execution.CacheType.CLASSIC
    elif args.cache_lru > 0:
        cache_type = execution.CacheType.LRU
    elif args.cache_none:
        cache_type = execution.CacheType.NONE
    return execution.PromptExecutor(
        server,
        cache_type=cache_type,
        cache_args={"lru": args.cache_lru, "ram": ram, "ram_inactive": ram_inactive},
    )


def boot(
    settings: ComfySettings,
    work: Path,
    sink: EventSink,
    extra_folders: dict[str, Path] | None = None,
) -> Comfy:
    """Import and initialise ComfyUI. Raises ``ConfigError`` for a bad COMFYUI_DIR or flags;
    anything else it raises means ComfyUI can't come up."""
    p = _Phases()
    root = check_dir(settings.comfyui_dir)
    cuda = gpu.use_cuda(settings.device)
    with p.phase("args"):
        if str(root) not in sys.path:
            sys.path.insert(0, str(root))
        args = _parse_args(settings.comfyui_args)
        args.cpu = args.cpu or not cuda
        args.disable_api_nodes = True  # they call comfy.org with a user's credentials
        args.disable_metadata = not settings.png_metadata
        if getattr(args, "front_end_root", None) is None:  # (a stub ComfyUI may lack the flag)
            # The worker serves no page. An empty web root keeps PromptServer from importing the
            # browser front end (left out of the image: docs/deploy.md) and checking its version.
            web_root = work / "web-root"
            web_root.mkdir(parents=True, exist_ok=True)
            args.front_end_root = str(web_root)
        if cuda:
            gpu.before_torch(args)
    with p.phase("prestartup"):
        _prestartup(root)
    with p.phase("paths"):
        import folder_paths
        from utils.mime_types import init_mime_types

        output, temp = _directories(folder_paths, root, settings, work, extra_folders or {})
        init_mime_types()
    with p.phase("imports"):
        import comfy.model_management as mm
        import comfy.utils  # noqa: F401  - imports torch, as main.py does at this point
        import execution
        import nodes
        import server

        comfyui_version = importlib.import_module("comfyui_version")
        hook_breaker_ac10a0 = importlib.import_module("hook_breaker_ac10a0")

        dynamic_vram = gpu.after_imports(args) if cuda else False
    with p.phase("server"):
        loop = asyncio.new_event_loop()
        prompt_server = server.PromptServer(loop)
        # Its send_sync queues onto a loop that never runs: route events to the worker instead.
        prompt_server.send_sync = lambda event, data, sid=None: sink(event, data)
    with p.phase("nodes"):
        custom_nodes = not args.disable_all_custom_nodes or bool(args.whitelist_custom_nodes)
        hook_breaker_ac10a0.save_functions()
        failed = loop.run_until_complete(
            nodes.init_extra_nodes(init_custom_nodes=custom_nodes, init_api_nodes=False)
        )
        gpu.after_nodes()
        hook_breaker_ac10a0.restore_functions()
    prompt_executor = _prompt_executor(execution, mm, args, prompt_server)
    return Comfy(
        execution=execution,
        nodes=nodes,
        folder_paths=folder_paths,
        mm=mm,
        server=prompt_server,
        prompt_executor=prompt_executor,
        hook_breaker=hook_breaker_ac10a0,
        loop=loop,
        job_loop=asyncio.new_event_loop(),
        output_dir=output,
        temp_dir=temp,
        cuda=cuda,
        dynamic_vram=dynamic_vram,
        version=str(comfyui_version.__version__),
        phases=p.times,
        failed_nodes=[str(n) for n in failed or []],
    )


def probe(settings: ComfySettings) -> str:
    """Import ComfyUI's core the way ``boot`` does, without loading nodes; return its version.

    What ``python -m worker check`` runs: it fails the same way ``boot`` would, in less time.
    """
    root = check_dir(settings.comfyui_dir)
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    args = _parse_args(settings.comfyui_args)
    args.cpu = args.cpu or not gpu.use_cuda(settings.device)
    args.disable_api_nodes = True
    for name in ("folder_paths", "comfy.model_management", "execution", "nodes", "server"):
        importlib.import_module(name)
    return str(importlib.import_module("comfyui_version").__version__)
