"""The Dockerfile's promises that a linter cannot see: pins agree with the install script, the
image runs `python -m worker run` as a non-root uid, and .dockerignore lets in what it copies."""

from __future__ import annotations

import fnmatch
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = (ROOT / "Dockerfile").read_text()


def arg_default(name: str) -> str:
    match = re.search(rf"^ARG {name}=(\S+)$", DOCKERFILE, re.M)
    assert match, f"ARG {name}=... not found"
    return match.group(1)


def test_comfyui_pin_agrees_with_the_install_script() -> None:
    script = (ROOT / "scripts" / "install-comfyui").read_text()
    assert f"ref={arg_default('COMFYUI_REF')}\n" in script
    assert f"commit={arg_default('COMFYUI_COMMIT')}\n" in script
    assert arg_default("COMFYUI_REF") == "v0.33.0"


def test_cuda_12_base_and_default_command() -> None:
    assert re.fullmatch(r"nvidia/cuda:12\.\d+\.\d+-base-ubuntu\d+\.\d+", arg_default("BASE_IMAGE"))
    assert 'ENTRYPOINT ["python", "-m", "worker"]' in DOCKERFILE
    assert DOCKERFILE.rstrip().endswith('CMD ["serve"]'), "the service's; jobs set args"


def test_runs_as_a_numeric_non_root_user() -> None:
    users = re.findall(r"^USER (\S+)$", DOCKERFILE, re.M)
    assert users == ["10001:10001"]
    assert "useradd --create-home --uid 10001" in DOCKERFILE
    assert "COMFYUI_DIR=/opt/comfyui" in DOCKERFILE


def _ignored(path: str, rules: list[str]) -> bool:
    ignored = False
    for rule in rules:
        negate = rule.startswith("!")
        pattern = rule.lstrip("!").rstrip("/")
        if fnmatch.fnmatch(path, pattern) or path.startswith(pattern + "/"):
            ignored = not negate
    return ignored


def test_dockerignore_lets_in_exactly_what_is_copied() -> None:
    rules = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    copied = [
        source
        for line in re.findall(r"^COPY (.+)$", DOCKERFILE, re.M)
        if "--from=" not in line
        for source in line.split()[:-1]
        if not source.startswith("--")
    ]
    assert set(copied) == {
        "image/requirements.lock",
        "image/trim.txt",
        "image/trim.py",
        "image/startup-imports.txt",
        "tests/deploy/startup_imports.py",
        "scripts/install-comfyui",
        "worker",
        "pipelines",
        "main.py",
    }
    for path in copied:
        assert not _ignored(path, rules), f"{path} is excluded by .dockerignore"
    for path in (
        "tests/conftest.py",
        ".venv/bin/python",
        "infra/main.tf",
        ".git/HEAD",
        "requirements.txt",
        "image/comfyui-requirements.txt",
    ):
        assert _ignored(path, rules), f"{path} would be sent to the build"


def test_the_python_set_is_exactly_the_hashed_lock() -> None:
    """One pip install, of the lock, complete and hashed; nothing else installs Python packages."""
    installs = re.findall(r"pip install ([^\n]+)", DOCKERFILE)
    assert installs == ["--no-deps --require-hashes -r /src/image/requirements.lock"]
    script = (ROOT / "scripts" / "install-comfyui").read_text()
    assert "pip install" not in script
    # The build fails when a start-up import crashes in that set.
    assert "startup_imports.py check /src/image/startup-imports.txt" in DOCKERFILE


def test_the_trim_runs_after_the_install_and_before_the_import_check() -> None:
    """The start-up import check runs on the trimmed set, the one the runtime stage copies."""
    build = DOCKERFILE.split("\nFROM ", 2)[1]  # the build stage
    steps = [line for line in build.splitlines() if line.startswith("RUN ")]
    pip = next(i for i, s in enumerate(steps) if "pip install" in s)
    assert steps[pip + 1] == "RUN /opt/venv/bin/python /src/image/trim.py /src/image/trim.txt"
    assert "startup_imports.py check" in steps[pip + 2]
