"""scripts/install-comfyui, offline: a fixture git repository stands in for ComfyUI (tagged like the
pinned release), and a folder of hand-made wheels stands in for the index."""

from __future__ import annotations

import os
import subprocess
import sys
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


@pytest.fixture
def offline() -> dict[str, str]:
    # Only file:// sources: nothing may need the network, and no pip is involved any more.
    return {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}


def install(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=300, check=False
    )


def test_installs_the_tagged_release_source_only(tmp_path: Path, offline: dict[str, str]) -> None:
    commit = make_repo(tmp_path / "ComfyUI", {"requirements.txt": "fixturedep\n"}, tag="v0.33.0")
    dest = tmp_path / "out" / "ComfyUI"
    args = ["--dir", str(dest), "--repo", f"file://{tmp_path}/ComfyUI"]
    args += ["--ref", "v0.33.0", "--commit", commit]
    first = install(offline, *args)
    assert first.returncode == 0, first.stderr
    assert git(dest, "rev-parse", "HEAD") == commit
    # The requirements are the lock's business (image/requirements.lock), not this script's.
    assert "pip" not in first.stderr and "fixturedep" not in first.stderr
    again = install(offline, *args)
    assert again.returncode == 0, again.stderr
    assert f"keeping {dest}" in again.stderr


def test_the_retired_python_options_are_refused(tmp_path: Path, offline: dict[str, str]) -> None:
    for retired in (["--python", sys.executable], ["--constraints", "requirements.txt"]):
        result = install(offline, "--dir", str(tmp_path / "c"), *retired)
        assert result.returncode == 1
        assert f"unknown argument '{retired[0]}'" in result.stderr


def test_a_moved_tag_is_refused_and_leaves_nothing(tmp_path: Path, offline: dict[str, str]) -> None:
    make_repo(tmp_path / "ComfyUI", {"requirements.txt": ""}, tag="v0.33.0")
    dest = tmp_path / "out"
    result = install(
        offline, "--dir", str(dest), "--repo", f"file://{tmp_path}/ComfyUI"
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
        *("--custom-node", f"file://{tmp_path}/my-nodes@{node}"),
    )
    assert result.returncode == 0, result.stderr
    assert git(dest / "custom_nodes" / "my-nodes", "rev-parse", "HEAD") == node
    bad = install(offline, "--dir", str(dest), "--custom-node", "file:///x@main")
    assert bad.returncode == 1
    assert "--custom-node wants URL@SHA" in bad.stderr


def test_a_custom_node_needing_a_package_outside_the_lock_fails(
    tmp_path: Path, offline: dict[str, str]
) -> None:
    commit = make_repo(tmp_path / "ComfyUI", {"requirements.txt": ""}, tag="v0.33.0")
    reqs = "# a comment\nNumPy>=1.0\nopencv_python_headless==4.0  # not locked\n-e ./local\n"
    node = make_repo(tmp_path / "cv-nodes", {"requirements.txt": reqs})
    lock = tmp_path / "requirements.lock"
    lock.write_text("numpy==2.5.5 \\\n    --hash=sha256:" + "0" * 64 + "\n")
    args = ["--dir", str(tmp_path / "out"), "--repo", f"file://{tmp_path}/ComfyUI"]
    args += ["--commit", commit, "--lock", str(lock)]
    result = install(offline, *args, "--custom-node", f"file://{tmp_path}/cv-nodes@{node}")
    assert result.returncode == 1
    # numpy (listed first, as NumPy) is in the lock: only the missing one is named.
    assert f"not in {lock}: opencv-python-headless (cv-nodes). Add" in result.stderr
    lock.write_text(lock.read_text() + "opencv-python-headless==4.0 \\\n    --hash=sha256:1\n")
    ok = install(offline, *args, "--custom-node", f"file://{tmp_path}/cv-nodes@{node}")
    assert ok.returncode == 0, ok.stderr
