"""``python -m worker cost`` on a fixture set of results (a folder, and a gs:// prefix on
fake-gcs-server), against figures computed by hand."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import pytest

from tests.cloud import Cloud
from worker.commands import cost as cost_command
from worker.config import Settings
from worker.exitcodes import ExitCode


def result(
    job: str, status: str, images: int, gpu: float, billed: float, task: int
) -> dict[str, Any]:
    return {
        "version": 1,
        "job_id": job,
        "status": status,
        "outputs": [{"kind": "image", "size": 10}] * images + [{"kind": "text", "size": 1}],
        "gpu_seconds": gpu,
        "billed_s": billed,
        "cost_usd": round(billed * 0.0003947, 8),
        "worker": {"job": "comfy-worker", "execution": "e1", "task_index": task, "task_attempt": 0},
    }


# Task 0 ran two jobs (the first carried the boot), task 1 one that failed; a refused message
# cost nothing. By hand: spend on results = 66 s x 0.0003947 = $0.0260502; idle tails 2 tasks x
# 60 s = 120 s = $0.047364; spend $0.0734142 for 3 images: $24.4714 per 1,000 images.
FIXTURE = [
    result("a", "succeeded", 1, 10.0, 30.0, 0),
    result("b", "succeeded", 2, 6.0, 11.0, 0),
    result("c", "failed", 0, 3.0, 25.0, 1),
    result("d", "failed", 0, 0.0, 0.0, 1),
]


def write(folder: Path) -> Path:
    for doc in FIXTURE:
        (folder / doc["job_id"]).mkdir(parents=True)
        (folder / doc["job_id"] / "result.json").write_text(json.dumps(doc))
    return folder


def run(source: str, capsys: pytest.CaptureFixture[str], *extra: str, **env: str) -> dict[str, Any]:
    parser = argparse.ArgumentParser()
    cost_command.register(parser.add_subparsers())
    args = parser.parse_args(["cost", source, "--json", "--idle-s", "60", *extra])
    assert cost_command.main(args, Settings.from_env(env)) == ExitCode.OK
    doc: dict[str, Any] = json.loads(capsys.readouterr().out)
    return doc


def test_summary_of_a_folder_of_results(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    s = run(str(write(tmp_path)), capsys)["summary"]
    assert (s["results"], s["succeeded"], s["failed"], s["images"], s["tasks"]) == (4, 2, 2, 3, 2)
    assert s["gpu_seconds"] == pytest.approx(19.0)
    assert s["cost_usd"] == pytest.approx(0.0260502)
    assert s["tail_usd"] == pytest.approx(0.047364)
    assert s["spend_usd"] == pytest.approx(0.0734142)
    assert s["per_1000_images"] == pytest.approx(24.4714)


def test_projection_for_a_monthly_load(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """10,000 jobs a month at the measured (66 + 120) / 4 = 46.5 task-seconds per job, i.e.
    465,000 s; 0.75 images per job, 7,500 images."""
    rows = run(str(write(tmp_path)), capsys, "--jobs", "10000")["projection"]
    monthly = {r["platform"]: r["monthly_usd"] for r in rows}
    assert monthly == pytest.approx(
        {
            "Cloud Run L4, 8 vCPU / 32 GiB, no zonal redundancy": 465_000 * 0.0003947,
            "Cloud Run L4, 8 vCPU / 32 GiB, zonal redundancy": 465_000 * 0.0004989,
            "Cloud Run L4, 4 vCPU / 16 GiB, no zonal redundancy": 465_000 * 0.0002907,
            "Cloud Run L4, 4 vCPU / 16 GiB, zonal redundancy": 465_000 * 0.0003949,
            "Runpod L4 24 GB, flex": 465_000 * 0.00019,
            # 165,000 busy seconds fit in one always-on worker for the month's 730 h.
            "Runpod L4 24 GB, active (1 always on)": 730 * 3600 * 0.00013,
        }
    )
    assert rows[0]["per_1000_images"] == pytest.approx(24.4714)


def test_rps_load_sizes_active_workers(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """0.5 jobs/s for 100 h is 180,000 jobs; with 10 task-seconds each, 1.8 M s, and 5 busy
    workers all through those 100 h."""
    doc = run(str(write(tmp_path)), capsys, "--rps", "0.5", "--hours", "100",
              "--seconds-per-job", "10", "--images-per-job", "4")  # fmt: skip
    rows = {r["platform"].split(" (")[0]: r for r in doc["projection"]}
    assert rows["Runpod L4 24 GB, flex"]["seconds"] == pytest.approx(1_800_000)
    assert rows["Runpod L4 24 GB, active"]["monthly_usd"] == pytest.approx(5 * 100 * 3600 * 0.00013)
    first = doc["projection"][0]
    assert first["per_1000_images"] == pytest.approx(10 * 0.0003947 / 4 * 1000)


def test_table_and_html_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    cost_command.register(parser.add_subparsers())
    report = tmp_path / "cost.html"
    args = parser.parse_args(
        [
            "cost",
            str(write(tmp_path / "r")),
            "--jobs",
            "10000",
            "--idle-s",
            "60",
            "--html",
            str(report),
        ]
    )
    assert cost_command.main(args, Settings.from_env({})) == ExitCode.OK
    out = capsys.readouterr().out
    assert "per 1,000 images   $24.4714" in out
    assert "Cloud Run L4, 8 vCPU / 32 GiB, no zonal redundancy" in out and "$183.54" in out
    page = report.read_text()
    assert page.count("<rect ") == 6 and "<svg" in page and "$341.64" in page


def test_results_under_a_gs_prefix(cloud: Cloud, capsys: pytest.CaptureFixture[str]) -> None:
    bucket = cloud.gcs.bucket(cloud.bucket)
    for doc in FIXTURE:
        bucket.blob(f"results/batch-1/{doc['job_id']}/result.json").upload_from_string(
            json.dumps(doc)
        )
    bucket.blob("results/batch-1/a/ComfyUI_00001_.png").upload_from_string(b"png")
    s = run(f"gs://{cloud.bucket}/results/batch-1", capsys)["summary"]
    assert (s["results"], s["images"]) == (4, 3)
    assert s["spend_usd"] == pytest.approx(0.0734142)
