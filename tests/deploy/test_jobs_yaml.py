"""jobs.yaml and jobs-dispatch.yaml: the Cloud Run v1 schema, then ``gcloud run jobs replace`` run
for real against a recording stand-in for the API, and assertions on what gcloud sent."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from typing import Any

import jsonschema
import pytest

from tests.deploy import jobfiles
from tests.deploy.discovery import schema_for
from tests.deploy.recorder import RecordingProxy
from worker.config import Settings

FILES = ("jobs.yaml", "jobs-dispatch.yaml")
GPU_TASK_LIMIT_S = 3600  # Cloud Run: a GPU task runs at most 1 h


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(schema_for("Job"))


@pytest.fixture(scope="module")
def sent() -> Iterator[dict[str, list[dict[str, Any]]]]:
    """Replace each job twice (create, then update); the bodies gcloud sent, by job name."""
    proxy = RecordingProxy()
    try:
        for name in FILES:
            for _ in range(2):
                result = jobfiles.replace(proxy, jobfiles.render(name))
                assert result.returncode == 0, result.stderr
        bodies: dict[str, list[dict[str, Any]]] = {}
        for req in proxy.recorder.writes():
            assert req.body is not None
            assert req.host == f"{jobfiles.REGION}-run.test", "the regional endpoint"
            bodies.setdefault(req.body["metadata"]["name"], []).append(req.body)
        bodies["_methods"] = [{"m": r.method, "p": r.path} for r in proxy.recorder.writes()]
        yield bodies
    finally:
        proxy.stop()


def task_spec(doc: dict[str, Any]) -> dict[str, Any]:
    spec = doc["spec"]["template"]["spec"]["template"]["spec"]
    assert isinstance(spec, dict)
    return spec


@pytest.mark.parametrize("name", FILES)
def test_job_files_follow_the_cloud_run_v1_schema(
    name: str, validator: jsonschema.Draft202012Validator
) -> None:
    errors = [
        f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(jobfiles.load(name))
    ]
    assert errors == []


def test_the_schema_rejects_a_misspelt_field(validator: jsonschema.Draft202012Validator) -> None:
    doc = jobfiles.load("jobs.yaml")
    task_spec(doc)["nodeSelectors"] = {"run.googleapis.com/accelerator": "nvidia-l4"}
    doc["spec"]["template"]["spec"]["template"]["spec"]["containers"][0]["resources"]["limit"] = {}
    messages = [e.message for e in validator.iter_errors(doc)]
    assert any("'nodeSelectors' was unexpected" in m for m in messages)
    assert any("'limit' was unexpected" in m for m in messages)


def test_gcloud_creates_then_replaces_both_jobs(sent: dict[str, list[dict[str, Any]]]) -> None:
    methods = [(m["m"], m["p"].rsplit("/", 1)[-1]) for m in sent["_methods"]]
    assert methods == [
        ("POST", "jobs"),
        ("PUT", "comfy-worker"),
        ("POST", "jobs"),
        ("PUT", "comfy-dispatch"),
    ]
    for name, file in (("comfy-worker", "jobs.yaml"), ("comfy-dispatch", "jobs-dispatch.yaml")):
        want = jobfiles.load(file)
        for body in sent[name]:
            # gcloud adds its client annotations (job and execution template) and otherwise
            # sends the file as written.
            for meta in (body["metadata"], body["spec"]["template"]["metadata"]):
                annotations = meta.get("annotations", {})
                assert annotations.pop("run.googleapis.com/client-name") == "gcloud"
                annotations.pop("run.googleapis.com/client-version")
                if not annotations:
                    meta.pop("annotations")
            body["metadata"].pop("namespace", None)
            assert body == want


def test_worker_job_asks_for_one_l4_with_8_cpu_and_32_gib(
    sent: dict[str, list[dict[str, Any]]],
) -> None:
    body = sent["comfy-worker"][-1]
    task = task_spec(body)
    assert task["nodeSelector"] == {"run.googleapis.com/accelerator": "nvidia-l4"}
    limits = jobfiles.container(body)["resources"]["limits"]
    assert limits == {"cpu": "8", "memory": "32Gi", "nvidia.com/gpu": "1"}
    annotations = body["spec"]["template"]["metadata"]["annotations"]
    assert annotations["run.googleapis.com/execution-environment"] == "gen2"
    assert 0 < int(task["timeoutSeconds"]) <= GPU_TASK_LIMIT_S
    assert 1 <= task["maxRetries"] <= 10
    assert body["spec"]["template"]["spec"]["parallelism"] >= 1
    assert task["serviceAccountName"] == f"comfy-worker@{jobfiles.PROJECT}.iam.gserviceaccount.com"
    assert jobfiles.container(body)["image"] == jobfiles.IMAGE
    assert jobfiles.container(body)["args"] == ["run"]


def test_worker_env_is_a_complete_valid_configuration(
    sent: dict[str, list[dict[str, Any]]],
) -> None:
    body = sent["comfy-worker"][-1]
    env = jobfiles.env_of(body)
    unknown = set(env) - jobfiles.config_variables()
    assert unknown == set(), "variables worker/config.py never reads (misspelt?)"
    settings = Settings.from_env(env)
    settings.require("GOOGLE_CLOUD_PROJECT", "JOBS_SUBSCRIPTION", "RESULTS_TOPIC", "OUTPUT_URI")
    task_timeout = int(task_spec(body)["timeoutSeconds"])
    assert settings.timeouts.task_s == task_timeout, "TASK_TIMEOUT_S must equal timeoutSeconds"
    assert settings.timeouts.job_s + settings.timeouts.stop_margin_s < task_timeout
    assert settings.project == jobfiles.PROJECT
    assert settings.output_uri == f"gs://{jobfiles.PROJECT}-comfy-outputs"
    assert str(settings.comfy.comfyui_dir) == "/opt/comfyui", "where the Dockerfile puts ComfyUI"


def test_worker_model_source_is_the_models_bucket(sent: dict[str, list[dict[str, Any]]]) -> None:
    body = sent["comfy-worker"][-1]
    env = jobfiles.env_of(body)
    bucket = f"{jobfiles.PROJECT}-comfy-models"
    volumes = {v["name"]: v for v in task_spec(body)["volumes"]}
    mounts = {m["mountPath"]: m for m in jobfiles.container(body)["volumeMounts"]}
    mount = mounts[env["MODELS_DIR"]]
    assert mount["readOnly"] is True
    csi = volumes[mount["name"]]["csi"]
    assert csi["driver"] == "gcsfuse.run.googleapis.com"
    assert csi["volumeAttributes"]["bucketName"] == bucket
    assert csi["readOnly"] is True
    assert env["MODEL_MANIFEST"].startswith(f"gs://{bucket}/")
    assert env["MODEL_CACHE_DIR"].startswith("/tmp/"), "downloads go to the in-memory disk"


def test_dispatch_job_is_cpu_only_and_starts_the_worker_job(
    sent: dict[str, list[dict[str, Any]]],
) -> None:
    body = sent["comfy-dispatch"][-1]
    task = task_spec(body)
    assert "nodeSelector" not in task
    limits = jobfiles.container(body)["resources"]["limits"]
    assert "nvidia.com/gpu" not in limits
    assert jobfiles.container(body)["args"] == ["dispatch"]
    assert jobfiles.container(body)["image"] == jobfiles.IMAGE, "the same image as the worker"
    env = jobfiles.env_of(body)
    assert set(env) - jobfiles.config_variables() == set()
    settings = Settings.from_env(env)
    worker = sent["comfy-worker"][-1]["metadata"]["name"]
    assert settings.producer.run_job == (
        f"projects/{jobfiles.PROJECT}/locations/{jobfiles.REGION}/jobs/{worker}"
    )
    assert settings.producer.region == jobfiles.REGION
    worker_env = jobfiles.env_of(sent["comfy-worker"][-1])
    for name in ("JOBS_SUBSCRIPTION", "OUTPUT_URI", "GOOGLE_CLOUD_PROJECT"):
        assert env[name] == worker_env[name], name
    sa = task["serviceAccountName"]
    assert sa == f"comfy-dispatcher@{jobfiles.PROJECT}.iam.gserviceaccount.com"


@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        (("jobs.yaml", "img:1", "Bad_Project", "us-central1"), "not a project id"),
        (("jobs.yaml", "img:1", "my-proj", "central"), "not a region"),
        (("jobs.yaml", "img 1", "my-proj", "us-central1"), "not an image reference"),
        (("nope.yaml", "img:1", "my-proj", "us-central1"), "not found"),
    ],
)
def test_render_job_refuses_bad_values(args: tuple[str, ...], complaint: str) -> None:
    with pytest.raises(RuntimeError, match=complaint):
        jobfiles.render(args[0], *args[1:])


def test_render_job_refuses_unknown_placeholders(tmp_path: Any) -> None:
    path = tmp_path / "job.yaml"
    path.write_text("image: ${IMAGE}\nbucket: ${BUCKET}\n")
    result = subprocess.run(
        [str(jobfiles.ROOT / "scripts" / "render-job"), str(path), "i:1", "my-proj", "us-central1"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    assert "${BUCKET}" in result.stderr
