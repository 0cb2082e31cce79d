"""Render the Cloud Run job files and send them through ``gcloud run jobs replace`` for real,
with the recording proxy standing in for the Cloud Run Admin API."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import yaml

from tests.deploy.recorder import RecordingProxy

ROOT = Path(__file__).resolve().parents[2]
PROJECT = "my-proj"
REGION = "us-central1"
IMAGE = f"{REGION}-docker.pkg.dev/{PROJECT}/comfy/worker:0123abc"


def render(name: str, image: str = IMAGE, project: str = PROJECT, region: str = REGION) -> str:
    result = subprocess.run(
        [str(ROOT / "scripts" / "render-job"), str(ROOT / name), image, project, region],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"render-job {name} failed: {result.stderr.strip()}")
    return result.stdout


def load(name: str) -> dict[str, Any]:
    doc = yaml.safe_load(render(name))
    assert isinstance(doc, dict)
    return doc


def gcloud_env(proxy: RecordingProxy, config_dir: str) -> dict[str, str]:
    """gcloud with no credentials, a throwaway config, and the recorder as its HTTP proxy."""
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "CLOUDSDK_PYTHON")
    env = {k: v for k, v in os.environ.items() if k in keep}
    env.update(
        CLOUDSDK_CONFIG=config_dir,
        CLOUDSDK_AUTH_DISABLE_CREDENTIALS="true",
        CLOUDSDK_CORE_PROJECT=PROJECT,
        CLOUDSDK_CORE_DISABLE_PROMPTS="1",
        CLOUDSDK_CORE_DISABLE_USAGE_REPORTING="true",
        CLOUDSDK_COMPONENT_MANAGER_DISABLE_UPDATE_CHECK="true",
        # Becomes http://us-central1-run.test/ (gcloud derives a regional host): only the proxy
        # can answer for it.
        CLOUDSDK_API_ENDPOINT_OVERRIDES_RUN="http://run.test/",
        CLOUDSDK_PROXY_TYPE="http",
        CLOUDSDK_PROXY_ADDRESS="127.0.0.1",
        CLOUDSDK_PROXY_PORT=str(proxy.port),
    )
    return env


def replace(proxy: RecordingProxy, rendered: str) -> subprocess.CompletedProcess[str]:
    """Run ``gcloud run jobs replace`` on the rendered YAML against the proxy."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "job.yaml"
        path.write_text(rendered)
        return subprocess.run(
            ["gcloud", "run", "jobs", "replace", str(path), "--region", REGION],
            env=gcloud_env(proxy, str(Path(tmp) / "gcloud")),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )


def config_variables() -> set[str]:
    """Every environment variable worker/config.py reads (its only reader): the first upper-case
    string literal passed to any call there, e.g. ``r.int("MAX_JOBS", 0)``,
    ``_resource(r, "RESULTS_TOPIC", ...)``."""
    tree = ast.parse((ROOT / "worker" / "config.py").read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            for arg in node.args:
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                    if re.fullmatch(r"[A-Z][A-Z0-9_]+", arg.value):
                        names.add(arg.value)
                    break
    return names


def container(doc: dict[str, Any]) -> dict[str, Any]:
    containers = doc["spec"]["template"]["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1, "one container per task"
    c = containers[0]
    assert isinstance(c, dict)
    return c


def env_of(doc: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container(doc).get("env", [])}
