"""The third-party modules ComfyUI imports at start-up: import them in the image's Python set.

``image/startup-imports.txt`` lists, in ComfyUI's order, every top-level module outside the
standard library and outside ComfyUI's own tree that the worker's boot of ComfyUI v0.33.0 imports
(found with ``discover``, which boots ComfyUI and reads ``sys.modules``). ``check`` imports each
one in the interpreter it runs in, the image's venv, going on past failures so that one run shows
them all; it also checks that the packages the lock leaves out cannot be imported. This is how CI
catches an image whose Python set crashes ComfyUI at start-up without ComfyUI's source.

``--as-if-gpu`` does the same as a GPU machine would see it, as far as a CPU machine can: torch
reports one CUDA device (an sm_89 L4), a ``libcuda.so`` is on triton's search path, and no C
compiler is on PATH, as in the image's runtime stage. With triton 3.3.1 installed this fails the way
an L4 would ("Failed to find C compiler"); without triton it passes.

    python -m tests.deploy.startup_imports check [--as-if-gpu] image/startup-imports.txt
    COMFYUI_DIR=DIR python -m tests.deploy.startup_imports discover   (in a ComfyUI venv)
"""

from __future__ import annotations

import argparse
import ast
import importlib
import importlib.util
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path

LOCK_NAME = "requirements.lock"  # beside the list, in the repository and in the image's build
REPO_LOCK = Path(__file__).resolve().parents[2] / "image" / LOCK_NAME


def excluded(lock: Path) -> tuple[str, ...]:
    """The modules of the packages the lock leaves out of the image, from its ``#: excluded =``
    header (``tests/deploy/imagelock.py`` writes it from its ``EXCLUDED``): none may be
    importable there, and none may be imported at boot. Each is its package's name with ``_``
    for ``-`` (triton, comfyui_frontend_package, ...); a test holds that true."""
    for line in lock.read_text().splitlines():
        if line.startswith("#: excluded ="):
            return tuple(name.replace("-", "_") for name in line.split("=", 1)[1].split())
    raise SystemExit(f"startup-imports: {lock} has no '#: excluded =' header")


def listed(path: Path) -> list[str]:
    names = []
    for raw in path.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if line:
            names.append(line)
    return names


def as_if_gpu(scratch: Path) -> None:
    """Make this process look like an L4 host to what runs at import: a fake only at the seam
    that has no local stand-in (the GPU itself)."""
    import torch

    torch.cuda.is_available = lambda: True
    torch.cuda.device_count = lambda: 1
    torch.cuda.get_device_capability = lambda *a, **k: (8, 9)
    torch.cuda.get_device_name = lambda *a, **k: "NVIDIA L4 (simulated)"
    (scratch / "libcuda.so").touch()
    (scratch / "libcuda.so.1").touch()
    os.environ["TRITON_LIBCUDA_PATH"] = str(scratch)
    os.environ["PATH"] = str(Path(sys.executable).parent)  # no cc, gcc or clang: like the image
    os.environ.pop("CC", None)


def check(modules: list[str], left_out: tuple[str, ...]) -> list[str]:
    """Import each module in order, then make sure none of ``left_out`` is importable; return
    one line per failure."""
    failures = []
    for name in modules:
        started = time.perf_counter()
        try:
            importlib.import_module(name)
        except BaseException as exc:  # a crash at import of any kind is what this looks for
            last = traceback.extract_tb(exc.__traceback__)[-1:]
            where = f" ({last[0].filename}:{last[0].lineno})" if last else ""
            failures.append(f"import {name}: {type(exc).__name__}: {exc}{where}")
            print(f"FAIL {name}: {type(exc).__name__}: {exc}", file=sys.stderr)
            continue
        print(f"ok   {name} ({time.perf_counter() - started:.2f} s)", file=sys.stderr)
    for name in left_out:
        if importlib.util.find_spec(name) is not None:
            failures.append(f"{name} is importable, but the image leaves it out on purpose")
    return failures


def imported_by(source: str) -> list[str]:
    """Absolute module names a source file imports (anywhere in it, in order)."""
    names: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append(node.module)
    return names


def third_party(modules: dict[str, object], comfyui_dir: Path) -> list[str]:
    """Modules that ComfyUI's own loaded files import by name and that were imported: neither
    stdlib nor ComfyUI's tree nor this project, in first-seen order."""
    root = str(comfyui_dir.resolve())
    own = {p.name.removesuffix(".py") for p in comfyui_dir.iterdir()}
    found: list[str] = []
    for module in list(modules.values()):
        origin = getattr(module, "__file__", None) or ""
        if not origin.startswith(root) or not origin.endswith(".py"):
            continue
        for name in imported_by(Path(origin).read_text()):
            top = name.split(".", 1)[0]
            if top in own or top in sys.stdlib_module_names or top == "worker":
                continue
            if name in modules and name not in found:
                found.append(name)
    return found


def discover(comfyui_dir: Path) -> list[str]:
    """Boot ComfyUI the way the worker does (CPU) and list what it imported."""
    from worker.config import Settings
    from worker.executor.comfy.executor import ComfyExecutor

    with tempfile.TemporaryDirectory() as work:
        settings = Settings.from_env(
            {"COMFYUI_DIR": str(comfyui_dir), "WORK_DIR": work, "COMFYUI_DEVICE": "cpu"}
        )
        executor = ComfyExecutor(settings)
        executor.start()
        try:
            found = third_party(dict(sys.modules), comfyui_dir)
            left_out = excluded(REPO_LOCK)
            return [name for name in found if name not in left_out]
        finally:
            executor.close()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    c = sub.add_parser("check", help="import every listed module here")
    c.add_argument("--as-if-gpu", action="store_true", help="as an L4 host would (see above)")
    c.add_argument("list", type=Path)
    sub.add_parser("discover", help="boot ComfyUI (COMFYUI_DIR) and print what it imported")
    args = parser.parse_args(argv)
    if args.command == "discover":
        for name in discover(Path(os.environ["COMFYUI_DIR"])):
            print(name)
        return 0
    with tempfile.TemporaryDirectory() as scratch:
        if args.as_if_gpu:
            as_if_gpu(Path(scratch))
        failures = check(listed(args.list), excluded(args.list.with_name(LOCK_NAME)))
    for failure in failures:
        print(f"startup-imports: {failure}", file=sys.stderr)
    mode = " as if on a GPU" if args.as_if_gpu else ""
    print(f"startup-imports: {len(failures)} failure(s) in {sys.executable}{mode}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
