"""Base64 inputs decoded into files: the ``base64 -d`` path for large text agrees with strict
decoding, and falls back to it for what it refuses or would read differently."""

from __future__ import annotations

import base64
import os
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


def test_without_the_tool_python_decodes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(inputs, "_base64_tool", lambda: None)
    dest = tmp_path / "in.png"
    assert inputs.decode_base64_to("in.png", TEXT, dest, 10**9, Limits()) == len(RAW)
    assert dest.read_bytes() == RAW


def test_small_text_stays_in_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_child(*args: object) -> bool:
        raise AssertionError("small inputs are decoded in-process")

    monkeypatch.setattr(inputs, "_decode_external", no_child)
    dest = tmp_path / "in.png"
    assert inputs.decode_base64_to("in.png", base64.b64encode(b"png").decode(), dest, 99, Limits())
    assert dest.read_bytes() == b"png"
