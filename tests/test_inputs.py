"""Base64 inputs decoded into files: the ``base64 -d`` path for large text agrees with strict
decoding, and falls back to it for what it refuses or would read differently."""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from worker.config import Limits
from worker.errors import JobFailed
from worker.message import inputs

RAW = os.urandom(inputs.EXTERNAL_MIN_BYTES + 2)
TEXT = base64.b64encode(RAW).decode()


@pytest.mark.parametrize(
    "text",
    [TEXT, "data:image/png;base64," + TEXT, base64.encodebytes(RAW).decode()],
    ids=["plain", "data-url", "line-breaks"],
)
def test_large_text_decodes_to_the_same_bytes(tmp_path: Path, text: str) -> None:
    dest = tmp_path / "in.png"
    assert inputs.decode_base64_to("in.png", text, dest, 10**9, Limits()) == len(RAW)
    assert dest.read_bytes() == RAW


@pytest.mark.parametrize(
    ("text", "why"),
    [
        (TEXT[:1000] + "!" + TEXT[1001:], "Only base64 data"),
        (TEXT[:1000] + "==" + TEXT[1002:], "padding"),  # base64 -d would accept it
        (TEXT[:-1], "padding"),
    ],
    ids=["alphabet", "padding-inside", "truncated"],
)
def test_large_invalid_text_is_refused_as_before(tmp_path: Path, text: str, why: str) -> None:
    with pytest.raises(JobFailed, match=why):
        inputs.decode_base64_to("in.png", text, tmp_path / "in.png", 10**9, Limits())


def test_large_text_over_the_budget_leaves_no_file(tmp_path: Path) -> None:
    dest = tmp_path / "in.png"
    with pytest.raises(JobFailed, match="over the limit"):
        inputs.decode_base64_to("in.png", TEXT, dest, 1000, Limits())
    assert not dest.exists()


REPO = Path(__file__).resolve().parent.parent
DECODE = """
import sys
from pathlib import Path
from worker.config import Limits
from worker.message import inputs
text = Path(sys.argv[1]).read_text()
print(inputs.decode_base64_to("in.png", text, Path(sys.argv[2]), 10**9, Limits()))
"""


def decode_with_path(tmp_path: Path, text: str, path: list[Path]) -> tuple[int, bytes]:
    """Decode in a fresh process whose PATH is ``path`` (the tool is looked up once per process)."""
    src, dest = tmp_path / "text.b64", tmp_path / "in.png"
    src.write_text(text)
    env = {**os.environ, "PATH": os.pathsep.join(str(d) for d in path)}
    done = subprocess.run(
        [sys.executable, "-c", DECODE, str(src), str(dest)],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    return int(done.stdout), dest.read_bytes()


def recording_tool(tmp_path: Path) -> tuple[Path, Path]:
    """A ``base64`` first on PATH that notes each call in a file, then runs the real one."""
    real = shutil.which("base64")
    assert real is not None
    bindir, calls = tmp_path / "bin", tmp_path / "calls"
    bindir.mkdir()
    tool = bindir / "base64"
    tool.write_text(f'#!/bin/sh\necho "$@" >> {calls}\nexec {real} "$@"\n')
    tool.chmod(0o755)
    return bindir, calls


def test_without_the_tool_python_decodes(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    assert decode_with_path(tmp_path, TEXT, [empty]) == (len(RAW), RAW)


@pytest.mark.parametrize(("raw", "runs"), [(b"png", 0), (RAW, 1)], ids=["small", "large"])
def test_only_large_text_goes_to_the_tool(tmp_path: Path, raw: bytes, runs: int) -> None:
    bindir, calls = recording_tool(tmp_path)
    text = base64.b64encode(raw).decode()
    assert decode_with_path(tmp_path, text, [bindir]) == (len(raw), raw)
    assert (calls.read_text().splitlines() if calls.exists() else []) == ["-d"] * runs
