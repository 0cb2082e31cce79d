"""Staged videos and audio are measured before the run (skipped without COMFYUI_DIR or PyAV):
ComfyUI's loaders decode whatever PyAV reads, to its end, whatever the file is named."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.comfy import workflows
from tests.comfy.conftest import ComfyHarness
from worker.errors import ErrorType, JobFailed
from worker.executor.comfy import bounds

pytestmark = pytest.mark.comfyui

av: Any = pytest.importorskip("av", reason="PyAV (ComfyUI's requirement) is not installed")
np: Any = pytest.importorskip("numpy")

MAX = 89_478_485  # the harness's MAX_INPUT_PIXELS (the default)


def video(path: Path, width: int, height: int, frames: int, fmt: str = "mp4") -> bytes:
    """``frames`` black frames: tiny on disk however long."""
    with av.open(str(path), "w", format=fmt) as out:
        stream = out.add_stream("mpeg4", rate=30)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        black = np.zeros((height, width, 3), np.uint8)
        frame = av.VideoFrame.from_ndarray(black, format="rgb24")
        for _ in range(frames):
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path.read_bytes()


def flac(path: Path, seconds: int, rate: int = 8000) -> bytes:
    """Mono silence in 65535-sample FLAC frames: hours of it in tens of kilobytes."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream("flac", rate=rate, options={"frame_size": "65535"})
        stream.layout = "mono"
        chunk = np.zeros((1, 65536), np.int16)
        frame = av.AudioFrame.from_ndarray(chunk, format="s16", layout="mono")
        frame.sample_rate = rate
        for start in range(0, seconds * rate, 65536):
            frame.pts = start
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path.read_bytes()


def refused(
    comfy: ComfyHarness, tmp_path: Path, job: str, workflow: Any, name: str, data: bytes
) -> str:
    with pytest.raises(JobFailed) as failed:
        comfy.run(job, workflow, tmp_path, {name: data})
    assert failed.value.error_type is ErrorType.INPUT_ERROR, failed.value.message
    assert not comfy.progress, "refused before any node ran"
    return failed.value.message


def load_video(name: str) -> dict[str, Any]:
    return {
        "1": {"class_type": "LoadVideo", "inputs": {"file": name}},
        "2": {"class_type": "GetVideoComponents", "inputs": {"video": ["1", 0]}},
        "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "v"}},
    }


def load_audio(name: str) -> dict[str, Any]:
    return {
        "1": {"class_type": "LoadAudio", "inputs": {"audio": name}},
        "2": {"class_type": "SaveAudio", "inputs": {"audio": ["1", 0], "filename_prefix": "a"}},
    }


def test_a_long_video_named_png_is_refused_before_load_image_decodes_it(
    comfy: ComfyHarness, tmp_path: Path
) -> None:
    # 50 frames of 1920 x 1080: 104 Mpx decoded (1.2 GB of float32), 160 kB on disk.
    data = video(tmp_path / "v.mp4", 1920, 1080, 50)
    message = refused(comfy, tmp_path, "png", workflows.load_invert("x.png"), "x.png", data)
    assert message.startswith("input 'x.png' is a video (mov,mp4")
    assert "50 frames of 1920 x 1080 (103680000 pixels decoded)" in message
    assert f"MAX_INPUT_PIXELS={MAX}" in message and "send a shorter or smaller clip" in message


def test_a_long_video_is_refused_before_load_video_decodes_it(
    comfy: ComfyHarness, tmp_path: Path
) -> None:
    data = video(tmp_path / "v.mp4", 1920, 1080, 50)
    message = refused(comfy, tmp_path, "video", load_video("long.mp4"), "long.mp4", data)
    assert "is a video" in message and "103680000 pixels decoded" in message


def test_a_header_claiming_few_frames_is_checked_against_the_packets(
    comfy: ComfyHarness, tmp_path: Path
) -> None:
    data = bytearray(video(tmp_path / "v.mkv", 1920, 1080, 50, fmt="matroska"))
    at = data.index(b"\x44\x89\x88")  # Matroska's Duration, an 8-byte float of milliseconds
    data[at + 3 : at + 11] = struct.pack(">d", 1.0)  # claims one millisecond: one frame
    message = refused(comfy, tmp_path, "lying", load_video("short.mkv"), "short.mkv", bytes(data))
    assert "is a video (matroska,webm) of at least 44 frames (its header says 1)" in message


def test_long_audio_is_refused_before_load_audio_decodes_it(
    comfy: ComfyHarness, tmp_path: Path
) -> None:
    # 9.4 hours at 8 kHz: 272 M samples (1.1 GB of float32), 68 kB on disk.
    data = flac(tmp_path / "a.flac", 34_000)
    message = refused(comfy, tmp_path, "audio", load_audio("long.flac"), "long.flac", data)
    assert message.startswith("input 'long.flac' is audio (flac) of 272")
    assert f"3 x MAX_INPUT_PIXELS={3 * MAX} samples" in message
    assert "send a shorter clip or fewer channels" in message


def test_a_flac_header_claiming_no_samples_is_checked_against_the_packets(
    comfy: ComfyHarness, tmp_path: Path
) -> None:
    data = bytearray(flac(tmp_path / "a.flac", 34_000))
    assert data[:4] == b"fLaC"
    # STREAMINFO's total samples: the low 4 bits of its byte 13 and bytes 14..17 (0: unknown).
    data[8 + 13] &= 0xF0
    data[8 + 14 : 8 + 18] = bytes(4)
    message = refused(comfy, tmp_path, "lyingaudio", load_audio("a.flac"), "a.flac", bytes(data))
    assert "is audio (flac) of at least" in message and "its header says" in message


def test_an_ordinary_short_clip_still_runs(comfy: ComfyHarness, tmp_path: Path) -> None:
    clip = video(tmp_path / "v.mp4", 64, 48, 5)
    result = comfy.run("clip", load_video("clip.mp4"), tmp_path, {"clip.mp4": clip})
    assert len(result.outputs) == 5  # one PNG a frame
    result = comfy.run("clippng", workflows.load_invert("clip.png"), tmp_path, {"clip.png": clip})
    assert len(result.outputs) == 5
    sound = flac(tmp_path / "a.flac", 2)
    result = comfy.run("sound", load_audio("s.flac"), tmp_path, {"s.flac": sound})
    assert [o.kind for o in result.outputs] == ["audio"]


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    width=st.integers(1, 24).map(lambda n: 2 * n),
    height=st.integers(1, 24).map(lambda n: 2 * n),
    frames=st.integers(1, 30),
    limit=st.integers(1, 48 * 48 * 30),
    fmt=st.sampled_from(["mp4", "matroska"]),
)
def test_a_video_is_refused_exactly_when_its_pixels_pass_the_limit(
    tmp_path: Path, width: int, height: int, frames: int, limit: int, fmt: str
) -> None:
    folder = tmp_path / f"{width}x{height}x{frames}{fmt}"
    folder.mkdir(exist_ok=True)
    video(folder / "clip.bin", width, height, frames, fmt=fmt)
    if width * height * frames > limit:
        with pytest.raises(JobFailed) as failed:
            bounds.check_images(folder, limit)
        assert failed.value.error_type is ErrorType.INPUT_ERROR
        assert f"frames of {width} x {height}" in failed.value.message
    else:  # under: PIL doesn't read it, PyAV counts it whole
        bounds.check_images(folder, limit)
