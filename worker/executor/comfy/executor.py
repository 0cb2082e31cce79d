"""``ComfyExecutor``: the embedded ComfyUI behind the ``Executor`` seam.

Lifecycle: ``start()`` fetches manifest models (in a thread, while ComfyUI imports), boots
ComfyUI, installs the progress hook and runs the optional warmup workflow; ``execute()`` runs one
job at a time; ``interrupt()`` may come from any thread; ``close()`` unloads models.
Between jobs it does what ComfyUI's own ``prompt_worker`` does: ``gc.collect()`` and
``soft_empty_cache()`` at most every ``GC_INTERVAL_S``, and the hook-breaker restore.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from typing import Any

from worker.config import Settings
from worker.errors import ConfigError, ErrorType, JobFailed, WorkerBroken, WorkerError
from worker.executor.base import ExecRequest, ExecResult
from worker.executor.comfy import failures, gpu, run, warmup
from worker.executor.comfy.boot import Comfy, boot
from worker.executor.comfy.failures import memory_recovered
from worker.executor.comfy.jobmodels import JobModelFolders
from worker.executor.comfy.monitor import RunMonitor
from worker.executor.comfy.requirements import missing_requirement
from worker.message.bounded import safe_str
from worker.obs import logs

log = logging.getLogger(__name__)
GC_INTERVAL_S = 10.0  # as ComfyUI's prompt_worker


class ComfyExecutor:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._work = settings.work_dir / "comfyui"
        self._comfy: Comfy | None = None
        self._lock = threading.Lock()  # one run at a time; guards _monitor and _running
        self._state = threading.Lock()
        self._monitor: RunMonitor | None = None
        self._running = False
        self._interrupt = threading.Event()
        self._last_gc = 0.0
        self._baseline_bytes = 0
        self._job_models = JobModelFolders(self._work / "job-models")  # each job's own models
        self.boot_s: float | None = None

    # -- start ----------------------------------------------------------------------------

    def start(self) -> None:
        if self._comfy is not None:
            return
        # No garbage collection while ComfyUI boots: its imports and node registry build ~600,000
        # objects, which set off 8 full collections over the growing heap, 1.2-1.6 s of a 9-10 s
        # boot on 2 cores (docs/performance.md), and leave ~10 objects of cyclic garbage.
        collecting = gc.isenabled()
        gc.disable()
        try:
            self._boot()
        finally:
            if collecting:
                gc.enable()
        if self._settings.comfy.warmup_workflow:
            warmup.run(self, self._settings, self._work / "warmup")

    def _boot(self) -> None:
        started = time.perf_counter()
        sync = None
        if self._settings.comfy.model_manifest:  # google.cloud.storage only when needed
            from worker.models.sync import ModelSync

            sync = ModelSync.from_settings(self._settings)
        fetch = sync.start() if sync is not None else None  # downloads overlap the imports
        try:
            comfy = boot(
                self._settings.comfy,
                self._work,
                self._on_event,
                sync.folders() if sync is not None else {},
            )
        except (ConfigError, WorkerBroken):
            raise
        except BaseException as exc:
            root = self._settings.comfy.comfyui_dir
            lacking = missing_requirement(exc, root.resolve()) if root is not None else None
            if lacking is not None:
                raise lacking from exc
            raise WorkerBroken(
                f"ComfyUI failed to start from {self._settings.comfy.comfyui_dir}: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        self._install_progress_hook()
        _limit_decoded_pixels(self._settings.limits.max_input_pixels)
        models_s = fetch.wait() if fetch is not None else 0.0
        self._comfy = comfy
        # Everything alive now (ComfyUI, torch, the node registry: ~600,000 objects) lives as
        # long as the process: leave it out of every later collection. A full gc.collect() over
        # it takes 0.6-0.9 s on 2 cores, and ComfyUI's housekeeping runs one every 10 s
        # (main.py does the same): frozen, those take milliseconds. Boot leaves ~10-30 garbage
        # objects behind, not worth a collection of its own before the first job.
        gc.freeze()
        self._last_gc = time.monotonic()
        if comfy.cuda:
            self._baseline_bytes = gpu.memory_allocated()[0]
        self.boot_s = round(time.perf_counter() - started, 3)
        logs.event(
            log,
            "comfyui.booted",
            boot_s=self.boot_s,
            phases=comfy.phases,
            models_wait_s=round(models_s, 3),
            comfyui_version=comfy.version,
            device="cuda" if comfy.cuda else "cpu",
            dynamic_vram=comfy.dynamic_vram,
            failed_custom_nodes=comfy.failed_nodes,
        )

    def _install_progress_hook(self) -> None:
        import comfy.model_management
        import comfy.utils
        from comfy_execution.progress import get_progress_state
        from comfy_execution.utils import get_executing_context

        def hook(
            value: float,
            total: float,
            preview: Any,
            prompt_id: str | None = None,
            node_id: str | None = None,
        ) -> None:
            context = get_executing_context()
            if node_id is None and context is not None:
                node_id = context.node_id
            # The check main.py's hook makes: how samplers notice an interrupt between steps.
            comfy.model_management.throw_exception_if_processing_interrupted()
            get_progress_state().update_progress(node_id, value, total, preview)
            monitor = self._monitor
            if monitor is not None:
                monitor.step(node_id, value, total)

        comfy.utils.set_progress_bar_global_hook(hook)
        comfy.utils.set_progress_bar_enabled(False)  # progress goes to logs, not a tqdm bar

    def _on_event(self, event: str, data: Any) -> None:
        monitor = self._monitor
        if monitor is not None:
            monitor.event(event, data)

    # -- jobs -----------------------------------------------------------------------------

    def execute(self, request: ExecRequest) -> ExecResult:
        comfy = self._comfy
        if comfy is None:
            raise WorkerBroken("execute() called before start()")
        with self._lock:
            monitor = RunMonitor(
                request.job_id,
                request.progress,
                self._settings.comfy.progress_interval_s,
                on_start=self._reassert_interrupt,
            )
            with self._state:
                self._interrupt.clear()
                self._monitor, self._running = monitor, True
            guards = run.Guards(
                self._settings.limits,
                self._interrupt.is_set,
                self._after_oom,
                gpu.device_problem if comfy.cuda else failures.no_device,
            )
            try:
                self._job_models.show(comfy, request.models)
                return run.execute(comfy, request, monitor, guards)
            except WorkerError:
                raise
            except MemoryError as exc:  # host memory, outside any node (ComfyUI catches those)
                del exc  # the traceback holds frames and their memory
                self._after_oom()
                raise JobFailed(
                    ErrorType.OOM,
                    "the worker ran out of host memory running this job; try a smaller size "
                    "or batch",
                ) from None
            except Exception as exc:  # anything else is a bug or ComfyUI breaking
                raise WorkerBroken(
                    f"unexpected {type(exc).__name__} running a job: {safe_str(exc, 1000)}"
                ) from exc
            finally:
                with self._state:
                    self._monitor, self._running = None, False
                comfy.folder_paths.set_input_directory(str(self._work / "input"))
                self._housekeeping(comfy)

    def interrupt(self) -> None:
        with self._state:
            if not self._running or self._comfy is None:
                return
            self._interrupt.set()
            self._comfy.nodes.interrupt_processing(True)

    def _reassert_interrupt(self) -> None:
        # execute_async clears ComfyUI's flag when it starts; an earlier request must survive.
        if self._interrupt.is_set() and self._comfy is not None:
            self._comfy.nodes.interrupt_processing(True)

    def _after_oom(self) -> None:
        comfy = self._comfy
        assert comfy is not None
        comfy.mm.unload_all_models()
        comfy.prompt_executor.reset()  # cached intermediates may hold the memory
        gc.collect()
        comfy.mm.soft_empty_cache()
        self._last_gc = time.monotonic()
        if comfy.cuda:
            allocated, total = gpu.memory_allocated()
            if not memory_recovered(allocated, self._baseline_bytes, total):
                raise WorkerBroken(
                    f"GPU memory did not come back after an out-of-memory error: "
                    f"{allocated // 2**20} MiB still allocated "
                    f"(idle: {self._baseline_bytes // 2**20} MiB)"
                )

    def _housekeeping(self, comfy: Comfy) -> None:
        now = time.monotonic()
        if now - self._last_gc < GC_INTERVAL_S:
            return
        gc.collect()
        comfy.mm.soft_empty_cache()
        comfy.hook_breaker.restore_functions()
        self._last_gc = now

    # -- end ------------------------------------------------------------------------------

    def close(self) -> None:
        comfy, self._comfy = self._comfy, None
        if comfy is None:
            return
        try:
            comfy.mm.unload_all_models()
            comfy.mm.soft_empty_cache()
        finally:
            comfy.loop.close()
            comfy.job_loop.close()

    @property
    def comfy(self) -> Comfy | None:
        """The booted ComfyUI (tests and the benchmark look at its model manager)."""
        return self._comfy


def _limit_decoded_pixels(max_pixels: int) -> None:
    """PIL's decompression-bomb guard at MAX_INPUT_PIXELS, an error rather than a warning.

    PIL only warns between its limit and twice that (90-180 Mpx by default), and an image
    decoded by a node from anywhere (a URL, another node's file) is not checked at staging.
    """
    import warnings

    from PIL import Image

    Image.MAX_IMAGE_PIXELS = max_pixels
    warnings.simplefilter("error", Image.DecompressionBombWarning)
