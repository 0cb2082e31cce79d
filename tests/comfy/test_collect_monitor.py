"""Output collection from ComfyUI's history and the run monitor (run without ComfyUI)."""

from __future__ import annotations

from pathlib import Path

import pytest

from worker.errors import ErrorType, JobFailed
from worker.executor.base import Progress
from worker.executor.comfy import collect
from worker.executor.comfy.monitor import RunMonitor


def _write(root: Path, rel: str, data: bytes = b"x") -> None:
    (root / rel).parent.mkdir(parents=True, exist_ok=True)
    (root / rel).write_bytes(data)


def test_collect_moves_reported_and_unreported_files_and_writes_text(tmp_path: Path) -> None:
    comfy_out, job_out = tmp_path / "comfy", tmp_path / "job"
    comfy_out.mkdir()
    _write(comfy_out, "ComfyUI_00001_.png")
    _write(comfy_out, "video/clip_00001_.mp4")
    _write(comfy_out, "audio/a_00001_.flac")
    _write(comfy_out, "mesh.glb")  # a custom node that saved without reporting
    history = {
        "9": {
            "images": [
                {"filename": "ComfyUI_00001_.png", "subfolder": "", "type": "output"},
                {"filename": "preview.png", "subfolder": "", "type": "temp"},
            ]
        },
        "12": {
            "images": [{"filename": "clip_00001_.mp4", "subfolder": "video", "type": "output"}],
            "animated": [True],
        },
        "13": {"audio": [{"filename": "a_00001_.flac", "subfolder": "audio", "type": "output"}]},
        "14": {"text": ["first", "second"]},
        "15": {"images": [{"filename": "passwd", "subfolder": "../../etc", "type": "output"}]},
    }

    produced = collect.collect(history, comfy_out, job_out)

    assert [(p.name, p.kind, p.node_id, p.content_type) for p in produced] == [
        ("ComfyUI_00001_.png", "image", "9", "image/png"),
        ("video/clip_00001_.mp4", "video", "12", "video/mp4"),
        ("audio/a_00001_.flac", "audio", "13", "audio/flac"),
        ("mesh.glb", "file", None, "model/gltf-binary"),
        ("text/14_1.txt", "text", "14", "text/plain; charset=utf-8"),
        ("text/14_2.txt", "text", "14", "text/plain; charset=utf-8"),
    ]
    assert all(p.path == job_out / p.name and p.path.is_file() for p in produced)
    assert (job_out / "text/14_2.txt").read_text() == "second"
    assert not any(comfy_out.rglob("*.png"))  # moved, not copied


def test_a_reported_file_that_is_missing_fails_the_job(tmp_path: Path) -> None:
    (tmp_path / "c").mkdir()
    history = {"9": {"images": [{"filename": "gone.png", "subfolder": "", "type": "output"}]}}
    with pytest.raises(JobFailed) as failed:
        collect.collect(history, tmp_path / "c", tmp_path / "j")
    assert failed.value.error_type is ErrorType.EXECUTION_ERROR and failed.value.node_id == "9"
    assert "did not write" in failed.value.message
    # A node that was cached in this run did not run for this job: what it names is not ours.
    assert collect.collect(history, tmp_path / "c", tmp_path / "j", cached=["9"]) == []


def test_links_are_never_followed_out_of_the_output_folder(tmp_path: Path) -> None:
    comfy_out, secret = tmp_path / "c", tmp_path / "secret.txt"
    (comfy_out / "sub").mkdir(parents=True)
    secret.write_text("do not upload")
    (comfy_out / "leak.txt").symlink_to(secret)
    (comfy_out / "linked-dir").symlink_to(tmp_path, target_is_directory=True)
    (comfy_out / "sub" / "real.png").write_bytes(b"png")
    produced = collect.collect({}, comfy_out, tmp_path / "j")
    assert [p.name for p in produced] == ["sub/real.png"]
    history = {"9": {"images": [{"filename": "leak.txt", "subfolder": "", "type": "output"}]}}
    with pytest.raises(JobFailed, match="not a regular file"):
        collect.collect(history, comfy_out, tmp_path / "j2")


def test_node_ids_with_odd_characters_get_safe_text_names(tmp_path: Path) -> None:
    (tmp_path / "c").mkdir()
    produced = collect.collect({"5:3": {"text": "t"}}, tmp_path / "c", tmp_path / "j")
    assert [p.name for p in produced] == ["text/5_3_1.txt"]


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_monitor_times_nodes_and_throttles_progress() -> None:
    clock, got = Clock(), list[Progress]()
    started: list[int] = []
    monitor = RunMonitor(
        "j", got.append, interval_s=1.0, on_start=lambda: started.append(1), clock=clock
    )
    monitor.event("execution_start", {"prompt_id": "p"})
    monitor.event("execution_cached", {"nodes": ["4"]})
    monitor.event("executing", {"node": "5"})
    clock.now = 0.5
    monitor.event("executing", {"node": "3"})  # throttled: 0.5 s after the last update
    for step in range(1, 11):
        clock.now = 0.5 + step * 0.3
        monitor.step(None, step, 10)
    monitor.event("executing", {"node": "9"})
    clock.now = 4.0
    timings = monitor.finish()

    assert started == [1] and monitor.cached == ["4"]
    assert timings == {"5": 0.5, "3": 3.0, "9": 0.5}
    assert got == [
        Progress("j", "5", 0.0, 1.0),
        Progress("j", "3", 2.0, 10.0),
        Progress("j", "3", 6.0, 10.0),
        Progress("j", "3", 10.0, 10.0),
    ]


def test_a_failing_progress_sink_does_not_fail_the_run() -> None:
    def broken(_: Progress) -> None:
        raise RuntimeError("publisher down")

    monitor = RunMonitor("j", broken, interval_s=0.0)
    monitor.event("executing", {"node": "1"})
    monitor.step("1", 1, 2)
    assert "1" in monitor.finish()
