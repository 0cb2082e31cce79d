"""service.yaml (HTTP mode): the Cloud Run v1 schema, then ``gcloud run services replace`` run
for real against the recording stand-in for the API, and the seed plan's settings on what gcloud
sent: 1 x L4, 8 CPU, 32 GiB, concurrency 1, 900 s, 0 to 3 instances, a startup probe on /ready,
no zonal redundancy, the image's default command, a complete configuration, private."""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from tests.deploy import hcl, jobfiles
from tests.deploy.discovery import schema_for
from tests.deploy.recorder import RecordingProxy
from worker.config import Settings


@pytest.fixture(scope="module")
def sent() -> dict[str, Any]:
    """The body gcloud sent for the service (created, then replaced)."""
    proxy = RecordingProxy()
    try:
        for _ in range(2):
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / "service.yaml"
                path.write_text(jobfiles.render("service.yaml"))
                result = subprocess.run(
                    ["gcloud", "run", "services", "replace", str(path), "--region",
                     jobfiles.REGION],
                    env=jobfiles.gcloud_env(proxy, str(Path(tmp) / "gcloud")),
                    capture_output=True, text=True, timeout=120, check=False,
                )  # fmt: skip
                assert result.returncode == 0, result.stderr
        writes = proxy.recorder.writes()
        assert [w.method for w in writes] == ["POST", "PUT"], "created, then replaced"
        body = writes[-1].body
        assert body is not None
        return body
    finally:
        proxy.stop()


def _template(doc: dict[str, Any]) -> dict[str, Any]:
    spec = doc["spec"]["template"]
    assert isinstance(spec, dict)
    return spec


def test_service_follows_the_cloud_run_v1_schema() -> None:
    validator = jsonschema.Draft202012Validator(schema_for("Service"))
    doc = jobfiles.load("service.yaml")
    assert [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(doc)] == []
    doc["spec"]["template"]["spec"]["containerConcurency"] = 1
    assert any("was unexpected" in e.message for e in validator.iter_errors(doc))


def test_the_seed_plans_service_settings(sent: dict[str, Any]) -> None:
    template = _template(sent)
    annotations = template["metadata"]["annotations"]
    assert annotations["autoscaling.knative.dev/minScale"] == "0"
    assert annotations["autoscaling.knative.dev/maxScale"] == "3"
    assert annotations["run.googleapis.com/gpu-zonal-redundancy-disabled"] == "true"
    assert annotations["run.googleapis.com/execution-environment"] == "gen2"
    assert annotations["run.googleapis.com/cpu-throttling"] == "false", "GPU needs always-on CPU"
    spec = template["spec"]
    assert spec["containerConcurrency"] == 1
    assert int(spec["timeoutSeconds"]) == 900
    assert spec["nodeSelector"] == {"run.googleapis.com/accelerator": "nvidia-l4"}
    (container,) = spec["containers"]
    assert container["resources"]["limits"] == {"cpu": "8", "memory": "32Gi", "nvidia.com/gpu": "1"}
    assert container["image"] == jobfiles.IMAGE
    assert container["args"] == ["serve"], "the image's default command: HTTP mode"
    assert "command" not in container
    assert container["ports"] == [{"name": "http1", "containerPort": 8080}]
    startup = container["startupProbe"]
    assert startup["httpGet"]["path"] == "/ready" and startup["httpGet"]["port"] == 8080
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 120, "the plan's cold start"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"


def test_the_service_env_is_a_complete_valid_configuration(sent: dict[str, Any]) -> None:
    (container,) = _template(sent)["spec"]["containers"]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert set(env) - jobfiles.config_variables() == set(), "variables config.py never reads"
    settings = Settings.from_env(env)
    settings.require("GOOGLE_CLOUD_PROJECT", "OUTPUT_URI", "RESULTS_TOPIC", "JOBS_TOPIC")
    assert settings.http.execute
    timeout = int(_template(sent)["spec"]["timeoutSeconds"])
    grace = min(30.0, max(2.0, settings.timeouts.job_s / 10))
    assert settings.timeouts.job_s + grace < timeout, "a job ends (and is recorded) in time"
    jobs = jobfiles.env_of(jobfiles.load("jobs.yaml"))
    for name in ("OUTPUT_URI", "RESULTS_TOPIC", "JOBS_TOPIC", "JOBS_SUBSCRIPTION", "COMFYUI_DIR"):
        assert env[name] == jobs[name], f"{name}: the same core and storage as the jobs"
    assert env["ALLOWED_INPUT_BUCKETS"] == jobs["ALLOWED_INPUT_BUCKETS"]
    assert settings.limits.allowed_input_buckets == (f"{jobfiles.PROJECT}-comfy-inputs",)


def test_the_service_is_private_and_runs_as_its_own_account(sent: dict[str, Any]) -> None:
    infra = hcl.load()
    account = _template(sent)["spec"]["serviceAccountName"]
    assert account.split("@")[0] == infra.get("google_service_account", "service")["account_id"]
    text = Path(jobfiles.ROOT / "service.yaml").read_text()
    assert "allow-unauthenticated" not in text and "allUsers" not in text
    for name in ("README.md", "docs/deploy.md", "docs/http.md"):
        doc = (jobfiles.ROOT / name).read_text()
        assert "--allow-unauthenticated" not in doc, name
