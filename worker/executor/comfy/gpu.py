"""The GPU-only start-up steps of ComfyUI's ``main.py``, for a worker that does not run it.

``main.py`` does three things on NVIDIA that change how the server behaves on an L4, all guarded
here so they run only when a CUDA device is used:

1. before torch is imported: ``import cuda_malloc``, which picks the cudaMallocAsync allocator
   (``PYTORCH_CUDA_ALLOC_CONF``), and comfy-aimdo's ``control.init`` (DynamicVRAM);
2. after ComfyUI's imports: ``comfy_aimdo.control.init_devices`` and, if it worked, the dynamic
   model patcher (the default on NVIDIA since ComfyUI 0.16);
3. after the custom nodes load: ``set_cudnn_benchmark()`` (custom nodes sometimes flip it).

Keep these in step with ``main.py`` when the pinned release moves (tests/comfy checks the names).
"""

from __future__ import annotations

import ctypes
import importlib
import logging
from pathlib import Path
from typing import Any

from worker.obs import logs

log = logging.getLogger(__name__)

_NVIDIA_MARKERS = (
    Path("/proc/driver/nvidia/version"),
    Path("/dev/nvidiactl"),
    Path("/dev/nvidia0"),
)


def nvidia_visible() -> bool:
    """Whether an NVIDIA driver and device are visible, decided without importing torch."""
    return any(p.exists() for p in _NVIDIA_MARKERS)


def use_cuda(device: str) -> bool:
    return device == "cuda" or (device == "auto" and nvidia_visible())


def before_torch(args: Any) -> None:
    """Step 1: the allocator and DynamicVRAM initialisation. ``torch`` must not be imported yet."""
    # Importing cuda_malloc sets PYTORCH_CUDA_ALLOC_CONF (cudaMallocAsync), as main.py does.
    importlib.import_module("cuda_malloc")
    from comfy.cli_args import enables_dynamic_vram

    if not enables_dynamic_vram():
        return
    aimdo = importlib.import_module("comfy_aimdo.control")
    headroom = None if args.reserve_vram is None else int(args.reserve_vram * 1024**3)
    try:
        aimdo.init(simple_vram_headroom=headroom, nvml_pressure=not args.disable_nvml_pressure)
    except TypeError:  # older comfy-aimdo protocols, as main.py tolerates them
        try:
            aimdo.init(simple_vram_headroom=headroom)
        except TypeError:
            aimdo.init()


def after_imports(args: Any) -> bool:
    """Step 2: DynamicVRAM on the devices; returns whether it is enabled."""
    import comfy.memory_management
    import comfy.model_management as mm
    import comfy.model_patcher
    from comfy.cli_args import enables_dynamic_vram

    aimdo = importlib.import_module("comfy_aimdo.control")
    if not (args.enable_dynamic_vram or (enables_dynamic_vram() and mm.is_nvidia())):
        return False
    if not args.enable_dynamic_vram and mm.torch_version_numeric < (2, 8):
        logs.event(
            log, "comfyui.dynamic_vram_unsupported", logging.WARNING, reason="torch older than 2.8"
        )
        return False
    devices = mm.get_all_torch_devices()
    try:
        ok = aimdo.init_devices((d.index, int(args.vram_headroom * 1024**3)) for d in devices)
    except TypeError:
        ok = aimdo.init_devices(d.index for d in devices)
    if not ok:
        logs.event(log, "comfyui.dynamic_vram_unavailable", logging.WARNING)
        return False
    aimdo.set_log_info()
    comfy.model_patcher.CoreModelPatcher = comfy.model_patcher.ModelPatcherDynamic
    comfy.memory_management.aimdo_enabled = True
    return True


def after_nodes() -> None:
    """Step 3: re-apply ComfyUI's cuDNN benchmark policy after custom-node imports."""
    import comfy.model_management as mm

    mm.set_cudnn_benchmark()


def memory_allocated() -> tuple[int, int]:
    """(bytes torch holds on the current CUDA device, the device's total memory)."""
    import torch

    index = torch.cuda.current_device()
    return (
        int(torch.cuda.memory_allocated(index)),
        int(torch.cuda.get_device_properties(index).total_memory),
    )


def device_problem() -> str | None:
    """A tiny CUDA round trip after an error: ``None`` when the device still works.

    After a device-side assert or an illegal memory access every later CUDA call fails, so a
    small allocation, a kernel and a synchronisation tell a broken context from an error that
    was the job's (a shape mismatch raises the same ``RuntimeError`` type in torch 2.7).
    """
    import torch

    try:
        torch.cuda.synchronize()
        value = float((torch.ones(16, device="cuda") * 2).sum().item())
        torch.cuda.synchronize()
    except Exception as exc:
        return f"{type(exc).__name__}: {str(exc)[:300]}"
    return None if value == 32.0 else f"a test kernel returned {value}, not 32"


def driver_cuda_version() -> tuple[int, int] | None:
    """The CUDA version the installed NVIDIA driver supports (e.g. (12, 2) on Cloud Run's L4),
    or ``None`` when no driver library is there."""
    try:
        lib = ctypes.CDLL("libcuda.so.1")
    except OSError:
        return None
    version = ctypes.c_int()
    if lib.cuDriverGetVersion(ctypes.byref(version)) != 0:
        return None
    return version.value // 1000, (version.value % 1000) // 10


def cuda_problem(torch_cuda: str | None, driver: tuple[int, int] | None) -> str | None:
    """Why torch built for CUDA ``torch_cuda`` can't use this driver, or ``None`` if it can.

    Within one CUDA major version, minor version compatibility lets a 12.4 build run on a 12.2
    driver; across major versions it does not (a cu13x torch needs a CUDA 13 driver).
    """
    if torch_cuda is None:
        return "torch is a CPU-only build: install a CUDA (cu12x) build of torch"
    if driver is None:
        return "no NVIDIA driver (libcuda.so.1) is visible"
    major = int(torch_cuda.split(".")[0])
    if major > driver[0]:
        return (
            f"torch is built for CUDA {torch_cuda} but the driver supports CUDA "
            f"{driver[0]}.{driver[1]}: install a cu{driver[0]}x build of torch"
        )
    return None
