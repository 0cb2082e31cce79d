"""``python -m worker submit`` publishing against the Pub/Sub emulator and fake-gcs-server."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

from tests.cloud import Cloud
from tests.fakes.scripted import workflow
from tests.producer.cli import worker_cli
from worker.exitcodes import ExitCode


def _published(cloud: Cloud, want: int) -> list[tuple[dict[str, Any], dict[str, str]]]:
    got = cloud.pull(cloud.jobs_subscription, want, timeout_s=10)
    return [(json.loads(m.message.data), dict(m.message.attributes)) for m in got]


def test_a_workflow_file(cloud: Cloud, tmp_path: Path) -> None:
    path = tmp_path / "wf.json"
    path.write_text(json.dumps(workflow(outputs=[])))
    done = worker_cli(
        cloud,
        "submit",
        "--workflow",
        path,
        "--job-id",
        "wf-1",
        "--prefix",
        "a/b",
        "--metadata",
        '{"k": 1}',
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["wf-1"]
    [(body, attributes)] = _published(cloud, 1)
    assert body == {
        "job_id": "wf-1",
        "workflow": workflow(outputs=[]),
        "output": {"prefix": "a/b"},
        "metadata": {"k": 1},
    }
    assert attributes == {"job_id": "wf-1"}


def test_a_pipeline_with_typed_params(cloud: Cloud) -> None:
    done = worker_cli(
        cloud, "submit", "--pipeline", "demo-invert", "-p", "width=64", "-p", "color=0xff0000"
    )
    assert done.returncode == 0, done.stderr
    [job_id] = done.stdout.split()
    [(body, attributes)] = _published(cloud, 1)
    assert body == {
        "job_id": job_id,
        "pipeline": "demo-invert",
        "params": {"width": 64, "color": 0xFF0000},
    }
    assert attributes["job_id"] == job_id


def test_bad_params_are_refused_before_publishing(cloud: Cloud) -> None:
    done = worker_cli(
        cloud, "submit", "--pipeline", "sd15-txt2img", "-p", "width=513", "-p", "prompt=x"
    )
    assert done.returncode == ExitCode.USAGE
    assert "parameter 'width' must be int, 64..2048, multiple of 8" in done.stderr
    unknown = worker_cli(cloud, "submit", "--pipeline", "demo-invert", "-p", "size=3")
    assert unknown.returncode == ExitCode.USAGE and "width (int, 1..4096" in unknown.stderr
    typo = worker_cli(cloud, "submit", "--pipeline", "demo-invert", "-p", "widht=320")
    assert typo.returncode == ExitCode.USAGE
    assert "unknown parameter 'widht'; did you mean 'width'?" in typo.stderr
    missing = worker_cli(cloud, "submit", "--pipeline", "nope")
    assert missing.returncode == ExitCode.USAGE and "available: demo-invert" in missing.stderr
    assert cloud.backlog(timeout_s=2) == 0


def test_local_inputs_are_uploaded_not_inlined(cloud: Cloud, tmp_path: Path) -> None:
    image = tmp_path / "cat.png"
    image.write_bytes(b"\x89PNG" + bytes(2_000_000))
    wf = tmp_path / "wf.json"
    wf.write_text(json.dumps(workflow()))
    args = ("submit", "--workflow", wf, "--input", image, "--input", "other.png=" + str(image))
    first = worker_cli(cloud, *args)
    assert first.returncode == 0, first.stderr
    again = worker_cli(cloud, *args)
    assert again.returncode == 0, again.stderr
    (body, _), _ = _published(cloud, 2)
    uri = body["inputs"][0]["uri"]
    assert body["inputs"] == [{"name": "cat.png", "uri": uri}, {"name": "other.png", "uri": uri}]
    assert uri.startswith(f"gs://{cloud.bucket}/results/_inputs/") and uri.endswith("/cat.png")
    assert len(json.dumps(body)) < 2000
    uploaded = cloud.objects("results/_inputs/")
    assert len(uploaded) == 1  # content-addressed: once, whatever the name or the run
    [blob] = uploaded.values()
    assert blob.size == image.stat().st_size and blob.content_type == "image/png"


def test_a_file_parameter_from_a_local_path(cloud: Cloud, tmp_path: Path) -> None:
    image = tmp_path / "small.png"
    image.write_bytes(b"\x89PNG-data")
    done = worker_cli(cloud, "submit", "--pipeline", "upscale", "-p", f"image=@{image}")
    assert done.returncode == 0, done.stderr
    [(body, _)] = _published(cloud, 1)
    assert body["params"] == {"image": "small.png"}
    assert body["inputs"][0]["name"] == "small.png"
    assert body["inputs"][0]["uri"].startswith(f"gs://{cloud.bucket}/results/_inputs/")


def test_a_runpod_body_is_sent_unchanged_with_the_job_id_attribute(
    cloud: Cloud, tmp_path: Path
) -> None:
    body = {
        "input": {
            "workflow": workflow(),
            "images": [{"name": "a.png", "image": base64.b64encode(b"png").decode()}],
        }
    }
    path = tmp_path / "runpod.json"
    path.write_text(json.dumps(body))
    done = worker_cli(cloud, "submit", "--runpod", path)
    assert done.returncode == 0, done.stderr
    [(sent, attributes)] = _published(cloud, 1)
    assert sent == body and attributes == {"job_id": done.stdout.strip()}

    named = worker_cli(cloud, "submit", "--runpod", path, "--job-id", "rp-7")
    assert named.returncode == 0, named.stderr
    assert named.stdout.split() == ["rp-7"]
    [(sent, attributes)] = _published(cloud, 1)
    assert sent == body and attributes == {"job_id": "rp-7"}


def test_dry_run_shows_each_message_with_its_attributes(cloud: Cloud, tmp_path: Path) -> None:
    path = tmp_path / "runpod.json"
    body = {"input": {"workflow": workflow()}}
    path.write_text(json.dumps(body))
    done = worker_cli(cloud, "submit", "--runpod", path, "--job-id", "rp-8", "--dry-run")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"attributes": {"job_id": "rp-8"}, "data": body}
    piped = worker_cli(cloud, "submit", "--pipeline", "demo-invert", "--job-id", "p", "--dry-run")
    assert json.loads(piped.stdout) == {
        "attributes": {"job_id": "p"},
        "data": {"job_id": "p", "pipeline": "demo-invert", "params": {}},
    }
    assert cloud.backlog(timeout_s=2) == 0


def test_a_jsonl_file_of_many_jobs(cloud: Cloud, tmp_path: Path) -> None:
    (tmp_path / "in.png").write_bytes(b"png")
    lines: list[dict[str, Any]] = [{"workflow": workflow(n=i)} for i in range(2000)]
    lines[5] = {"job_id": "mine", "workflow": workflow()}
    lines[7] = {"workflow": workflow(), "inputs": [{"name": "x.png", "path": "in.png"}]}
    path = tmp_path / "jobs.jsonl"
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n\n")
    done = worker_cli(cloud, "submit", "--jsonl", path)
    assert done.returncode == 0, done.stderr
    ids = done.stdout.split()
    assert len(ids) == 2000 and len(set(ids)) == 2000 and ids[5] == "mine"
    assert ids[0].endswith("-000001") and ids[1999].endswith("-002000")
    assert "published 2000 job(s)" in done.stderr
    published = _published(cloud, 2000)
    assert sorted(a["job_id"] for _, a in published) == sorted(ids)
    by_id = {a["job_id"]: b for b, a in published}
    assert by_id[ids[7]]["inputs"][0]["uri"].startswith(f"gs://{cloud.bucket}/results/_inputs/")


def test_a_bad_jsonl_line_stops_everything_before_publishing(cloud: Cloud, tmp_path: Path) -> None:
    path = tmp_path / "jobs.jsonl"
    path.write_text(json.dumps({"workflow": workflow()}) + "\n[1, 2]\n")
    done = worker_cli(cloud, "submit", "--jsonl", path)
    assert done.returncode == ExitCode.USAGE
    assert "line 2: a job message must be a JSON object" in done.stderr
    assert cloud.backlog(timeout_s=2) == 0


def test_usage_errors(cloud: Cloud, tmp_path: Path) -> None:
    ui = tmp_path / "ui.json"
    ui.write_text(json.dumps({"nodes": [], "links": []}))
    done = worker_cli(cloud, "submit", "--workflow", ui)
    assert done.returncode == ExitCode.USAGE and "Export (API)" in done.stderr
    jsonl = tmp_path / "j.jsonl"
    jsonl.write_text("{}\n")
    mixed = worker_cli(cloud, "submit", "--jsonl", jsonl, "--prefix", "x")
    assert mixed.returncode == ExitCode.USAGE and "--prefix only go with" in mixed.stderr
    many = worker_cli(cloud, "submit", "--jsonl", jsonl, "--job-id", "x")
    assert many.returncode == ExitCode.USAGE and "its own job_id" in many.stderr
    none = worker_cli(cloud, "submit", "--workflow", tmp_path / "missing.json")
    assert none.returncode == ExitCode.USAGE and "can't read workflow file" in none.stderr
    no_topic = worker_cli(cloud, "submit", "--workflow", ui, JOBS_TOPIC="")
    assert no_topic.returncode == ExitCode.CONFIG and "JOBS_TOPIC" in no_topic.stderr
