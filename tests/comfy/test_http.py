"""The seed plan's service checks with real ComfyUI on CPU, served as the image serves it
(functions-framework + gunicorn, the emulators behind): cold start (process start to
``/ready``) under 120 s, a model-free request under 30 s, a concurrent request refused with 429
and no OOM, a 2048x2048 job with no OOM. Model-free workflows: no weights are needed (on CPU the
diffusion checks are ``tests/comfy/test_diffusion.py``'s; ``bench/gpu_check.py`` runs them all
on a GPU)."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests import proctree
from tests.cloud import Cloud
from tests.comfy.conftest import comfyui_dir_or_skip
from tests.comfy.workflows import model_free
from tests.http.conftest import KEY, Server, serve, stop
from worker.local import emulators

pytestmark = pytest.mark.comfyui


def big(size: int = 2048, radius: int = 31) -> dict[str, Any]:
    """EmptyImage size x size -> ImageBlur (slow on CPU) -> SaveImage."""
    return {
        "1": {
            "class_type": "EmptyImage",
            "inputs": {"width": size, "height": size, "batch_size": 1, "color": 0x3366FF},
        },
        "2": {
            "class_type": "ImageBlur",
            "inputs": {"image": ["1", 0], "blur_radius": radius, "sigma": 10.0},
        },
        "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "big"}},
    }


@pytest.fixture(scope="module")
def comfy_server(
    pubsub_emulator: emulators.Emulator,
    gcs_emulator: emulators.Emulator,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Server, float]]:
    comfyui = comfyui_dir_or_skip()
    tmp = tmp_path_factory.mktemp("comfy-http")
    cloud = Cloud.create(uuid.uuid4().hex[:10], tmp / "work", pubsub_emulator.host,
                         f"http://{gcs_emulator.host}")  # fmt: skip
    (tmp / "keys").write_text(KEY + "\n")
    started = time.monotonic()
    server = serve(
        cloud,
        tmp / "server.log",
        EXECUTOR="worker.executor.comfy:build_executor",
        COMFYUI_DIR=comfyui,
        COMFYUI_DEVICE="cpu",
        API_KEYS_FILE=tmp / "keys",
        JOB_TIMEOUT_S=300,
    )
    cold_start = time.monotonic() - started
    try:
        yield server, cold_start
    finally:
        stop(server)
        cloud.close()


def peak_rss_mib(pid: int) -> float:
    """The highest resident set of the server and its descendants (gunicorn's worker, and the
    executor process ComfyUI runs in under it)."""
    peak = 0
    for p in proctree.tree(pid):
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]))
        except OSError:
            continue  # it ended meanwhile
    return peak / 1024


def test_cold_start_is_under_120_s(comfy_server: tuple[Server, float]) -> None:
    _, cold_start = comfy_server
    print(f"cold start (process start -> /ready 200): {cold_start:.1f} s")
    assert cold_start < 120


def test_a_model_free_request_is_under_30_s(comfy_server: tuple[Server, float]) -> None:
    server, _ = comfy_server
    started = time.monotonic()
    response = server.post("/predict?inline=1", {"workflow": model_free(size=512)})
    took = time.monotonic() - started
    assert response.status_code == 200, response.text[:500]
    assert response.json()["output"]["images"][0]["type"] == "base64"
    print(f"/predict model-free 512x512: {took * 1000:.0f} ms")
    assert took < 30


def test_2048_with_a_concurrent_request_refused_and_no_oom(
    comfy_server: tuple[Server, float],
) -> None:
    server, _ = comfy_server
    first: list[requests.Response] = []
    thread = threading.Thread(
        target=lambda: first.append(server.post("/predict", {"workflow": big()}, timeout=300))
    )
    started = time.monotonic()
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while server.get("/v2/ep/health").json()["jobs"]["inProgress"] == 0:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        second = server.post("/predict", {"workflow": model_free()})
        assert second.status_code == 429 and int(second.headers["Retry-After"]) >= 1
    finally:
        thread.join(300)
    took = time.monotonic() - started
    assert first and first[0].status_code == 200, first[0].text[:500] if first else "no answer"
    doc = first[0].json()
    assert doc["status"] == "succeeded" and doc["outputs"][0]["size"] > 0
    assert server.process.poll() is None and server.get("/ready").status_code == 200
    rss = peak_rss_mib(server.process.pid)
    print(f"2048x2048 blur: {took:.1f} s; the concurrent request got 429; peak RSS {rss:.0f} MiB")
