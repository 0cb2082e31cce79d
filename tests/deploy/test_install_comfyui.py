"""scripts/install-comfyui, offline: a fixture git repository stands in for ComfyUI (tagged like the
pinned release), and a folder of hand-made wheels stands in for the index."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "install-comfyui"


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@localhost", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def make_repo(path: Path, files: dict[str, str], tag: str | None = None) -> str:
    path.mkdir(parents=True)
    git(path, "init", "-q")
    for name, text in files.items():
        (path / name).write_text(text)
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "fixture")
    if tag:
        git(path, "tag", tag)
    git(path, "config", "uploadpack.allowAnySHA1InWant", "true")
    return git(path, "rev-parse", "HEAD")


def make_wheel(folder: Path, name: str, version: str) -> None:
    dist = f"{name}-{version}.dist-info"
    files = {
        f"{name}/__init__.py": f'VERSION = "{version}"\n',
        f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{dist}/WHEEL": (
            "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        ),
    }
    files[f"{dist}/RECORD"] = "".join(f"{f},,\n" for f in [*files, f"{dist}/RECORD"])
    with zipfile.ZipFile(folder / f"{name}-{version}-py3-none-any.whl", "w") as whl:
        for arc, text in files.items():
            whl.writestr(arc, text)


@pytest.fixture(scope="module")
def venv_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("venv") / "v"
    subprocess.run([sys.executable, "-m", "venv", str(target)], check=True)
    return target / "bin" / "python"


@pytest.fixture
def offline(tmp_path: Path) -> dict[str, str]:
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    for version in ("1.0", "2.0"):
        make_wheel(wheels, "fixturedep", version)
    keep = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    # PIP_CONFIG_FILE=/dev/null: no machine-wide index or constraints, only the wheel folder.
    return {
        **keep,
        "PIP_CONFIG_FILE": os.devnull,
        "PIP_NO_INDEX": "1",
        "PIP_FIND_LINKS": str(wheels),
    }


def install(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=300, check=False
    )


def test_installs_the_tagged_release_with_constraints_applied(
    tmp_path: Path, offline: dict[str, str], venv_python: Path
) -> None:
    commit = make_repo(tmp_path / "ComfyUI", {"requirements.txt": "fixturedep\n"}, tag="v0.33.0")
    constraints = tmp_path / "constraints.txt"
    constraints.write_text("fixturedep==1.0\n")  # 2.0 is available: the pin must win
    dest = tmp_path / "out" / "ComfyUI"
    args = [
        "--dir",
        str(dest),
        "--python",
        str(venv_python),
        "--repo",
        f"file://{tmp_path}/ComfyUI",
    ]
    args += ["--ref", "v0.33.0", "--commit", commit, "--constraints", str(constraints)]
    first = install(offline, *args)
    assert first.returncode == 0, first.stderr
    assert git(dest, "rev-parse", "HEAD") == commit
    version = subprocess.run(
        [str(venv_python), "-c", "import fixturedep; print(fixturedep.VERSION)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert version == "1.0"
    again = install(offline, *args)
    assert again.returncode == 0, again.stderr
    assert f"keeping {dest}" in again.stderr


def test_a_moved_tag_is_refused_and_leaves_nothing(tmp_path: Path, offline: dict[str, str]) -> None:
    make_repo(tmp_path / "ComfyUI", {"requirements.txt": ""}, tag="v0.33.0")
    dest = tmp_path / "out"
    result = install(
        offline, "--dir", str(dest), "--repo", f"file://{tmp_path}/ComfyUI", "--no-requirements"
    )  # the default --commit is upstream v0.33.0's, which this fixture is not
    assert result.returncode == 1
    assert "not the pinned 2f35f4a08176d993cded35dac3332be4f7287f41" in result.stderr
    assert not dest.exists()


def test_an_unreachable_source_says_to_set_comfyui_dir(
    tmp_path: Path, offline: dict[str, str]
) -> None:
    result = install(
        offline,
        "--dir",
        str(tmp_path / "c"),
        "--repo",
        f"file://{tmp_path}/missing",
        "--no-requirements",
    )
    assert result.returncode == 1
    assert "Set COMFYUI_DIR to an existing ComfyUI checkout" in result.stderr


def test_custom_nodes_are_pinned_by_commit(tmp_path: Path, offline: dict[str, str]) -> None:
    commit = make_repo(tmp_path / "ComfyUI", {"requirements.txt": ""}, tag="v0.33.0")
    node = make_repo(tmp_path / "my-nodes", {"__init__.py": "NODE_CLASS_MAPPINGS = {}\n"})
    git(tmp_path / "my-nodes", "commit", "-q", "--allow-empty", "-m", "later, not wanted")
    dest = tmp_path / "out"
    result = install(
        offline,
        *("--dir", str(dest), "--repo", f"file://{tmp_path}/ComfyUI", "--commit", commit),
        *("--custom-node", f"file://{tmp_path}/my-nodes@{node}", "--no-requirements"),
    )
    assert result.returncode == 0, result.stderr
    assert git(dest / "custom_nodes" / "my-nodes", "rev-parse", "HEAD") == node
    bad = install(
        offline, "--dir", str(dest), "--custom-node", "file:///x@main", "--no-requirements"
    )
    assert bad.returncode == 1
    assert "--custom-node wants URL@SHA" in bad.stderr
