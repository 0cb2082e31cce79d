"""Jobs that bring their own models, through ``python -m worker run``'s wiring (in this process),
the Pub/Sub emulator, fake-gcs-server and a local HTTPS host the test's CA signs."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

import pytest

from tests.cloud import Cloud
from tests.fakes.scripted import workflow
from tests.helpers import run_worker
from tests.modelhost import Certs, File, ModelHost
from worker.exitcodes import ExitCode
from worker.obs.logs import JsonFormatter

TOKEN = "hf_T0ken-that-must-never-leak-9f3b"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_jobs_bring_models_from_gcs_and_https(
    cloud: Cloud,
    model_host: ModelHost,
    model_certs: Certs,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)  # every line any logger writes, as the worker formats it
    lora, ckpt, vae = b"L" * 300_000, b"C" * 200_000, b"V" * 150_000
    cloud.gcs.bucket(cloud.bucket).blob("models/ckpt.safetensors").upload_from_string(ckpt)
    gs_uri = f"gs://{cloud.bucket}/models/ckpt.safetensors"
    model_host.files["/org/lora.safetensors"] = File(lora, token=TOKEN)
    model_host.files["/vae.safetensors"] = File(vae, stall_s=0.3)
    tokens = tmp_path / "tokens.json"
    tokens.write_text(json.dumps({model_host.netloc: TOKEN}))
    monkeypatch.setenv("SSL_CERT_FILE", str(model_certs.ca_file))  # OpenSSL's own variable

    def model(uri: str, folder: str, name: str, data: bytes | None = None) -> dict[str, Any]:
        entry = {"uri": uri, "folder": folder, "name": name}
        return entry | ({"sha256": sha(data)} if data is not None else {})

    first = [
        model(gs_uri, "checkpoints", "base.safetensors"),
        model(
            model_host.url("/org/lora.safetensors?download=true"),
            "loras",
            "style.safetensors",
            lora,
        ),
    ]
    jobs: dict[str, dict[str, Any]] = {
        "first": {"models": first, "workflow": workflow(list_models=True, sleep_s=1.5)},
        # Prefetched while "first" runs: its download overlaps that run.
        "second": {
            "models": [model(model_host.url("/vae.safetensors"), "vae", "v.safetensors", vae)],
            "workflow": workflow(list_models=True, sleep_s=0.2),
        },
        "again": {"models": first, "workflow": workflow(list_models=True)},
        "missing": {
            "models": [model(model_host.url("/nope.safetensors"), "loras", "n.sft", b"x")],
            "workflow": workflow(),
        },
        "webp": {
            "workflow": workflow(outputs=[{"name": "img.png", "png": [32, 16]}]),
            "output": {"format": "webp", "quality": 80},
        },
    }
    for job_id, body in jobs.items():
        cloud.publish({"job_id": job_id, **body})
    code = run_worker(
        cloud,
        ALLOWED_MODEL_BUCKETS=cloud.bucket,
        ALLOWED_MODEL_HOSTS=model_host.netloc,
        MODEL_FETCH_ALLOWED_NETWORKS="127.0.0.1/32",
        MODEL_HOST_TOKENS=tokens,
        IDLE_EXIT_S=2,
    )
    assert code == ExitCode.OK
    results = {job_id: cloud.result(job_id) for job_id in jobs}
    assert all(r is not None for r in results.values())
    r = {k: v for k, v in results.items() if v is not None}

    assert r["first"]["status"] == "succeeded", r["first"]["error"]
    assert [(m["folder"], m["name"], m["source"], m["size"]) for m in r["first"]["models"]] == [
        ("checkpoints", "base.safetensors", "download", len(ckpt)),
        ("loras", "style.safetensors", "download", len(lora)),
    ]
    listed = _text_output(cloud, "first", "models.txt")
    assert (
        listed == f"checkpoints/base.safetensors {sha(ckpt)}\nloras/style.safetensors {sha(lora)}\n"
    )
    assert r["first"]["models"][1]["uri"] == model_host.url("/org/lora.safetensors") + "?..."
    assert r["first"]["timings"]["models_s"] > 0

    second = r["second"]
    assert second["status"] == "succeeded" and second["models"][0]["source"] == "download"
    timings = second["timings"]
    assert timings["models_s"] >= 0.3  # the host stalled 0.3 s
    assert timings["models_overlap_s"] >= 0.9 * timings["models_s"]  # while "first" ran

    assert r["again"]["status"] == "succeeded"
    assert [m["source"] for m in r["again"]["models"]] == ["cache", "cache"]
    assert model_host.gets("/org/lora.safetensors") == 1  # one request (a 32 MiB first chunk)
    assert _text_output(cloud, "again", "models.txt") == listed

    assert r["missing"]["status"] == "failed"
    assert r["missing"]["error"]["type"] == "model_error"
    assert "models[0] (loras/n.sft from" in r["missing"]["error"]["message"]
    assert "answered 404" in r["missing"]["error"]["message"]

    assert r["webp"]["status"] == "succeeded"
    (out,) = r["webp"]["outputs"]
    assert (out["name"], out["content_type"], out["kind"]) == ("img.webp", "image/webp", "image")
    stored = cloud.objects("results/webp/")["results/webp/img.webp"]
    assert stored.content_type == "image/webp" and stored.download_as_bytes()[8:12] == b"WEBP"

    assert cloud.backlog() == 0  # every message acked, the model_error one too
    # The token went to its host, and nowhere else: no log line, result or event holds it.
    assert any(s.headers.get("authorization") == f"Bearer {TOKEN}" for s in model_host.seen)
    lines = "\n".join(JsonFormatter().format(record) for record in caplog.records)
    events = cloud.events(len(jobs))
    assert "models.downloaded" in lines and "job.succeeded" in lines
    assert TOKEN not in lines and TOKEN not in json.dumps(results) + json.dumps(events)
    assert TOKEN[:8] not in lines


def _text_output(cloud: Cloud, job_id: str, name: str) -> str:
    blob = cloud.objects(f"results/{job_id}/")[f"results/{job_id}/{name}"]
    return str(blob.download_as_text())
