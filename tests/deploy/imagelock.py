"""The image's Python lock, ``image/requirements.lock``: write it, and check that it is current.

The lock is ``uv pip compile`` of ``requirements.txt`` (the worker's pins, the torch set) and
``image/comfyui-requirements.txt`` (ComfyUI's own list at the pinned release) for the image's
Python and platform, with hashes, minus ``EXCLUDED``. The Dockerfile installs exactly this file
(``--no-deps --require-hashes``). Its header records a digest of each input's requirement lines
and the ComfyUI pin, so that changing an input without regenerating the lock fails ``check``.

    python -m tests.deploy.imagelock write --uv UV [--cache DIR]   (scripts/lock-image)
    python -m tests.deploy.imagelock check [--comfyui-dir DIR]     (scripts/check-deploy)
"""

from __future__ import annotations

import argparse
import hashlib
import re
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from image import trim
from tests.deploy import resolve

ROOT = Path(__file__).resolve().parents[2]
LOCK = "image/requirements.lock"
TRIM = "image/trim.txt"
# Entries of TRIM that hold only while the lock's torch is a CUDA 12 build: ComfyUI v0.33.0 turns
# comfy-kitchen's own CUDA kernels off below CUDA 13 (comfy/quant_ops.py), and uses them above.
CUDA12_ONLY_TRIM = ("comfy_kitchen/backends/cuda/_C.abi3.so",)
INPUTS = ("requirements.txt", "image/comfyui-requirements.txt")
PYTHON = "3.12"  # python3 of the base image (Ubuntu 24.04)
PLATFORM = "x86_64-manylinux_2_28"
# Left out of the image on purpose, with the reason (docs/deploy.md, "triton").
EXCLUDED = {
    "triton": "nothing in the worker compiles kernels (no torch.compile); triton 3.3.1 at import "
    "looks for a GPU driver (no GPU: RuntimeError) or a C compiler (GPU: none in the image), "
    "and comfy-kitchen imports it at ComfyUI start-up",
    **{
        name: "the browser front end's files (about 0.57 GB in all): only ComfyUI's own web server "
        "(PromptServer.add_routes, app/frontend_management.py) imports them, and the embedded "
        "worker never starts it"
        for name in (
            "comfyui-frontend-package",
            "comfyui-embedded-docs",
            "comfyui-workflow-templates",
            "comfyui-workflow-templates-core",
            "comfyui-workflow-templates-json",
            "comfyui-workflow-templates-media-api",
            "comfyui-workflow-templates-media-assets-01",
            "comfyui-workflow-templates-media-image",
            "comfyui-workflow-templates-media-other",
            "comfyui-workflow-templates-media-video",
        )
    },
}
# What the lock is resolved for, for evaluating environment markers (python_version, ...).
TARGET_ENV: dict[str, str] = {
    **{k: str(v) for k, v in default_environment().items()},
    "python_version": PYTHON,
    "python_full_version": f"{PYTHON}.3",
    "implementation_name": "cpython",
    "platform_python_implementation": "CPython",
    "sys_platform": "linux",
    "platform_system": "Linux",
    "platform_machine": "x86_64",
    "os_name": "posix",
}
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+?)\s*(?:\\)?$")
_HASH = re.compile(r"--hash=sha256:([0-9a-f]{64})")


def requirement_lines(text: str) -> list[str]:
    """The requirement lines of a requirements file: no comments, blanks or options."""
    lines = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            lines.append(line)
    return lines


def digest(text: str) -> str:
    """Of the requirement lines only: comments may change without making the lock stale."""
    return hashlib.sha256("\n".join(requirement_lines(text)).encode()).hexdigest()


@dataclass(frozen=True)
class ComfyPin:
    ref: str
    commit: str


def comfyui_pin(root: Path = ROOT) -> ComfyPin:
    """The pinned release, as the Dockerfile declares it."""
    dockerfile = (root / "Dockerfile").read_text()
    found = {
        name: re.search(rf"^ARG {name}=(\S+)$", dockerfile, re.M)
        for name in ("COMFYUI_REF", "COMFYUI_COMMIT")
    }
    missing = [name for name, match in found.items() if match is None]
    if missing:
        raise ValueError(f"Dockerfile: ARG {missing[0]}=... not found")
    ref, commit = (m.group(1) for m in found.values() if m is not None)
    return ComfyPin(ref, commit)


@dataclass
class Lock:
    header: dict[str, str] = field(default_factory=dict)  # "input requirements.txt" -> digest
    pins: dict[str, str] = field(default_factory=dict)  # canonical name -> version
    hashes: dict[str, list[str]] = field(default_factory=dict)


def parse_lock(text: str) -> Lock:
    lock = Lock()
    current: str | None = None
    for line in text.splitlines():
        if line.startswith("#: "):
            key, _, value = line[3:].partition(" = ")
            lock.header[key.strip()] = value.strip()
            continue
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        match = _PIN.match(stripped)
        if match and not line.startswith((" ", "\t")):
            current = canonicalize_name(match.group(1))
            lock.pins[current] = match.group(2)
            lock.hashes[current] = []
        elif current is not None:
            lock.hashes[current] += _HASH.findall(stripped)
    return lock


def header(root: Path = ROOT) -> str:
    pin = comfyui_pin(root)
    lines = [
        f"# {LOCK}: the container image's whole Python set. Generated by scripts/lock-image from",
        f"# {' and '.join(INPUTS)}; do not edit. The Dockerfile installs exactly this",
        "# (pip install --no-deps --require-hashes). Left out on purpose:",
        *(f"#   {name}: {why}" for name, why in EXCLUDED.items()),
        f"#: target = python {PYTHON} {PLATFORM}",
        f"#: comfyui = {pin.ref} {pin.commit}",
        *(f"#: input {path} = sha256:{digest((root / path).read_text())}" for path in INPUTS),
        f"#: excluded = {' '.join(sorted(EXCLUDED))}",
    ]
    return "\n".join(lines) + "\n"


def requirements_of(root: Path) -> Iterable[tuple[str, Requirement]]:
    for path in INPUTS:
        for line in requirement_lines((root / path).read_text()):
            yield path, Requirement(line)


def problems(root: Path = ROOT, comfyui_dir: Path | None = None) -> list[str]:
    """Everything that makes the lock not match its inputs, the pins or the base image."""
    if not (root / LOCK).exists():
        return [f"{LOCK} is missing: run scripts/lock-image"]
    lock = parse_lock((root / LOCK).read_text())
    pin = comfyui_pin(root)
    out = _header_problems(root, lock, pin) + _entry_problems(lock)
    out += _requirement_problems(root, lock)
    cuda = resolve.base_cuda((root / "Dockerfile").read_text())
    pinned = resolve.pins((root / INPUTS[0]).read_text())
    out += [f"{LOCK}: {p}" for p in resolve.problems(lock.pins, pinned, cuda)]
    out += _trim_problems(root, lock)
    if comfyui_dir is not None:
        out += _against_checkout(root, comfyui_dir, pin)
    return out


def _header_problems(root: Path, lock: Lock, pin: ComfyPin) -> list[str]:
    out = []
    if lock.header.get("comfyui") != f"{pin.ref} {pin.commit}":
        out.append(
            f"{LOCK} was made for ComfyUI {lock.header.get('comfyui')!r}, but the Dockerfile "
            f"pins {pin.ref} {pin.commit}: refresh image/comfyui-requirements.txt from that "
            "release and run scripts/lock-image"
        )
    if pin.commit not in (root / INPUTS[1]).read_text().split("\n", 1)[0]:
        out.append(f"{INPUTS[1]}'s first line does not name the pinned commit {pin.commit}")
    if lock.header.get("target") != f"python {PYTHON} {PLATFORM}":
        out.append(f"{LOCK} targets {lock.header.get('target')!r}, not python {PYTHON} {PLATFORM}")
    for path in INPUTS:
        if lock.header.get(f"input {path}") != f"sha256:{digest((root / path).read_text())}":
            out.append(f"{path} changed since {LOCK} was made: run scripts/lock-image")
    return out


def _entry_problems(lock: Lock) -> list[str]:
    out = [] if lock.pins else [f"{LOCK} pins nothing"]
    out += [
        f"{name} has no --hash in {LOCK} (pip --require-hashes refuses it)"
        for name, hashes in lock.hashes.items()
        if not hashes
    ]
    out += [
        f"{name} is in {LOCK} but is excluded from the image: {why}"
        for name, why in EXCLUDED.items()
        if name in lock.pins
    ]
    return out


def torch_cuda_major(lock: Lock) -> int | None:
    """The CUDA major of the lock's torch set, from its CUDA runtime wheel (None: no CUDA)."""
    for name, version in lock.pins.items():
        if name == "nvidia-cuda-runtime" or name.startswith("nvidia-cuda-runtime-cu"):
            return int(version.split(".", 1)[0])
    return None


def _trim_problems(root: Path, lock: Lock) -> list[str]:
    """The trim list parses, and leaves nothing out that this lock's torch would use."""
    try:
        entries = trim.parse((root / TRIM).read_text())
    except (OSError, ValueError) as exc:
        return [f"{TRIM}: {exc}"]
    major = torch_cuda_major(lock)
    if major is None or major < 13:
        return []
    return [
        f"{TRIM} leaves out {entry.pattern}, but {LOCK}'s torch is CUDA {major}: ComfyUI uses "
        "comfy-kitchen's CUDA kernels from CUDA 13 on; drop the entry"
        for entry in entries
        if entry.pattern in CUDA12_ONLY_TRIM
    ]


def _requirement_problems(root: Path, lock: Lock) -> list[str]:
    """Every input requirement (for the target's markers) is met by the lock's pin."""
    try:
        reqs = list(requirements_of(root))
    except InvalidRequirement as exc:
        return [f"an input requirement does not parse: {exc}"]
    out = []
    for path, req in reqs:
        name = canonicalize_name(req.name)
        if name in EXCLUDED or (req.marker is not None and not req.marker.evaluate(TARGET_ENV)):
            continue
        version = lock.pins.get(name)
        if version is None:
            out.append(f"{path} asks for {req} but {LOCK} has no {name}")
        elif req.specifier and not req.specifier.contains(version, prereleases=True):
            out.append(f"{path} asks for {req} but {LOCK} pins {name}=={version}")
    return out


def _against_checkout(root: Path, comfyui_dir: Path, pin: ComfyPin) -> list[str]:
    """A ComfyUI checkout at hand: its requirements are the ones the lock was made from."""
    version_file = comfyui_dir / "comfyui_version.py"
    version = re.search(r'__version__\s*=\s*"([^"]+)"', version_file.read_text())
    if version is None or f"v{version.group(1)}" != pin.ref:
        return [f"{comfyui_dir} is not ComfyUI {pin.ref} (comfyui_version.py)"]
    theirs = requirement_lines((comfyui_dir / "requirements.txt").read_text())
    ours = requirement_lines((root / INPUTS[1]).read_text())
    if theirs != ours:
        return [f"{INPUTS[1]} differs from {comfyui_dir}/requirements.txt: refresh it"]
    return []


def installed_problems(root: Path = ROOT) -> list[str]:
    """This interpreter's packages against the lock: every pin present at its version, nothing
    excluded. Run in .venv-image after extra (test) tools went in, to show nothing moved."""
    from importlib import metadata

    have: dict[str, str] = {
        canonicalize_name(d.metadata["Name"]): d.version for d in metadata.distributions()
    }
    lock = parse_lock((root / LOCK).read_text())
    out = [
        f"{name}=={version} is locked, but {have.get(name, 'nothing')} is installed"
        for name, version in lock.pins.items()
        if have.get(name) != version
    ]
    out += [f"{name} is installed but excluded from the image" for name in EXCLUDED if name in have]
    return out


def write(uv: str, cache: str | None, root: Path = ROOT) -> None:
    cmd = [uv, "pip", "compile", *INPUTS, "--python-version", PYTHON]
    cmd += ["--python-platform", PLATFORM, "--generate-hashes", "--no-header", "--quiet"]
    cmd += ["--index-url", "https://pypi.org/simple", "--emit-index-annotation"]
    for name in sorted(EXCLUDED):
        cmd += ["--no-emit-package", name]
    if cache:
        cmd += ["--cache-dir", cache]
    result = subprocess.run(cmd, cwd=root, capture_output=True, text=True, check=False, timeout=900)
    if result.returncode != 0:
        raise RuntimeError(f"uv pip compile failed:\n{result.stderr}")
    (root / LOCK).write_text(header(root) + result.stdout)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    w = sub.add_parser("write", help=f"regenerate {LOCK}")
    w.add_argument("--uv", required=True)
    w.add_argument("--cache")
    c = sub.add_parser("check", help=f"fail when {LOCK} does not match its inputs")
    c.add_argument("--comfyui-dir", type=Path, help="also compare with this ComfyUI checkout")
    sub.add_parser("installed", help=f"this interpreter's packages match {LOCK}")
    args = parser.parse_args(argv)
    if args.command == "installed":
        found = installed_problems()
        for p in found:
            print(f"imagelock: {p}", file=sys.stderr)
        return 1 if found else 0
    if args.command == "write":
        write(args.uv, args.cache)
        count = len(parse_lock((ROOT / LOCK).read_text()).pins)
        print(f"imagelock: wrote {LOCK} ({count} packages)", file=sys.stderr)
        return 0
    found = problems(ROOT, args.comfyui_dir)
    for p in found:
        print(f"imagelock: {p}", file=sys.stderr)
    if not found:
        count = len(parse_lock((ROOT / LOCK).read_text()).pins)
        print(f"imagelock: {LOCK} is current ({count} packages)", file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
