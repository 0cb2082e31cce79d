"""``POST /predict`` and the probes, served for real (functions-framework, emulators, scripted
executor): results as the job worker records them, inline outputs, 429 while busy, the job
timeout, a client that disconnects, API keys, and every body a client controls at its worst."""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import socket
import threading
import time
from pathlib import Path
from typing import Any

import requests

from tests.cloud import Cloud
from tests.fakes.scripted import workflow
from tests.http.conftest import KEY, Server, serve, stop
from tests.proctree import alive
from worker.exitcodes import ExitCode


def _job(job_id: str, **script: Any) -> dict[str, Any]:
    return {"job_id": job_id, "workflow": workflow(**script)}


def _error(response: requests.Response) -> dict[str, Any]:
    assert response.headers["Content-Type"] == "application/json", response.text[:200]
    doc = response.json()
    assert set(doc) == {"error"} and set(doc["error"]) == {"type", "message"}, doc
    return dict(doc["error"])


def test_probes_answer_without_a_key_and_fast(server: Server) -> None:
    for path in ("/", "/healthz", "/ready"):
        response = server.get(path, key=None)
        assert response.status_code == 200, path
        assert response.elapsed.total_seconds() < 0.5
    assert server.get("/ready", key=None).json() == {"ready": True}


def test_predict_records_the_job_as_the_worker_does_and_returns_its_result(
    server: Server,
) -> None:
    outputs = [{"name": "a.png", "bytes": 3000}, {"name": "big.png", "bytes": 9000}]
    outputs.append({"name": "note.txt", "text": "hello"})
    response = server.post("/predict?inline=1", _job("p-ok", outputs=outputs))
    assert response.status_code == 200, response.text[:500]
    doc = response.json()
    stored = server.cloud.result("p-ok")
    assert stored is not None and {k: v for k, v in doc.items() if k != "output"} == stored
    assert doc["status"] == "succeeded" and doc["form"] == "v1"
    assert doc["timings"]["queue_s"] >= 0
    by_name = {i["filename"]: i for i in doc["output"]["images"] + doc["output"]["files"]}
    blob = server.cloud.gcs.bucket(server.cloud.bucket).blob("results/p-ok/a.png")
    assert base64.b64decode(by_name["a.png"]["data"]) == blob.download_as_bytes()
    assert by_name["a.png"]["type"] == "base64"
    # INLINE_MAX_BYTES=5000: 3000 + 9000 is over it, so the big one comes as its URI.
    assert by_name["big.png"] == {
        "filename": "big.png",
        "type": "gcs_uri",
        "data": f"gs://{server.cloud.bucket}/results/p-ok/big.png",
        "content_type": "image/png",
        "size": 9000,
    }
    assert base64.b64decode(by_name["note.txt"]["data"]) == b"hello"
    plain = server.post("/predict", _job("p-plain"))
    assert plain.status_code == 200 and "output" not in plain.json()
    events = server.cloud.events(2)
    assert sorted(e["job_id"] for e in events) == ["p-ok", "p-plain"]


def test_a_runpod_body_is_a_job_and_its_id_is_generated(server: Server) -> None:
    body = {"input": {"workflow": workflow(outputs=[{"name": "r.png"}])}, "webhook": "x"}
    response = server.post("/predict", body)
    assert response.status_code == 200, response.text[:500]
    doc = response.json()
    assert doc["form"] == "runpod" and doc["job_id"] == doc["message_id"]
    assert any("webhook" in w for w in doc["warnings"])


def test_failed_jobs_get_their_result_and_a_status_by_class(server: Server) -> None:
    cases = {
        "p-node": (_job("p-node", fail="execution_error"), 422, "execution_error"),
        "p-bad": ({"job_id": "p-bad", "workflow": {}, "bogus": 1}, 400, "invalid_job"),
        "p-input": (
            {"job_id": "p-input", "workflow": workflow(), "inputs": [{"name": "x", "data": "!"}]},
            400,
            "input_error",
        ),
    }
    for job_id, (body, status, kind) in cases.items():
        response = server.post("/predict", body)
        assert response.status_code == status, (job_id, response.text[:300])
        assert response.json()["error"]["type"] == kind
        assert server.cloud.result(job_id) == response.json()


def test_not_json_and_too_deep_bodies_fail_as_jobs_with_a_recorded_result(server: Server) -> None:
    for body in (b"{oops", b"[" * 5000 + b"]" * 5000, b'{"job_id": "\\ud800"}', b"1e999"):
        response = server.post("/predict", body, headers={"Content-Type": "application/json"})
        assert response.status_code == 400, response.text[:300]
        doc = response.json()
        assert doc["status"] == "failed" and doc["error"]["type"] == "invalid_job"
        assert server.cloud.result(doc["job_id"]) == doc


def test_body_limits_and_content_type(server: Server) -> None:
    json_header = {"Content-Type": "application/json"}
    too_big = server.post("/predict", b"{" + b" " * 10_000_001 + b"}", headers=json_header)
    assert too_big.status_code == 413 and _error(too_big)["type"] == "body_too_large"

    def chunks() -> Any:
        for _ in range(1200):  # 12 MB, chunked: no Content-Length to refuse it by
            yield b" " * 10_000

    chunked = requests.post(
        server.url("/predict"),
        data=chunks(),
        headers={**json_header, "Authorization": f"Bearer {KEY}"},
        timeout=60,
    )
    assert chunked.status_code == 413 and _error(chunked)["type"] == "body_too_large"
    text = server.post("/predict", b'{"a": 1}', headers={"Content-Type": "text/plain"})
    assert text.status_code == 415 and _error(text)["type"] == "unsupported_media_type"
    empty = server.post("/predict", b"", headers=json_header)
    assert empty.status_code == 400 and _error(empty)["type"] == "invalid_request"
    assert server.get("/healthz").status_code == 200  # and the server is still fine


def test_a_second_request_while_one_runs_gets_429_with_retry_after(server: Server) -> None:
    first: list[requests.Response] = []
    thread = threading.Thread(
        target=lambda: first.append(server.post("/predict", _job("p-slow", sleep_s=2.5)))
    )
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while server.get("/v2/ep/health").json()["jobs"]["inProgress"] == 0:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        busy = server.post("/predict", _job("p-second"))
        assert busy.status_code == 429, busy.text[:300]
        assert _error(busy)["type"] == "busy"
        assert 1 <= int(busy.headers["Retry-After"]) <= 60
        started = time.monotonic()
        assert server.get("/healthz").status_code == 200
        assert time.monotonic() - started < 0.5, "healthz answers at once while a job runs"
    finally:
        thread.join(30)
    assert first[0].status_code == 200
    assert server.cloud.result("p-second") is None, "a refused request leaves nothing"
    assert server.post("/predict", _job("p-third")).status_code == 200


def test_the_job_timeout_ends_a_job_whose_client_went_away(server: Server) -> None:
    body = json.dumps(_job("p-gone", sleep_s=60)).encode()
    host, port = server.base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        head = (
            f"POST /predict HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
            f"Authorization: Bearer {KEY}\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        sock.sendall(head.encode() + body)
        time.sleep(0.5)  # the job has started; the client leaves
    deadline = time.monotonic() + 20  # JOB_TIMEOUT_S=4, then the interrupt's grace
    while (result := server.cloud.result("p-gone")) is None:
        assert time.monotonic() < deadline, "the job outlived its timeout"
        time.sleep(0.2)
    assert result["error"]["type"] == "timeout"
    # result.json comes before the event and the ack: until they are done the slot is busy (429).
    deadline = time.monotonic() + 10
    while (after := server.post("/predict", _job("p-after"))).status_code == 429:
        assert time.monotonic() < deadline, "the slot stayed busy after the job ended"
        time.sleep(0.2)
    assert after.status_code == 200, after.text[:300]


def test_a_job_past_its_timeout_answers_504_with_its_result(server: Server) -> None:
    response = server.post("/predict", _job("p-timeout", sleep_s=60))
    assert response.status_code == 504 and response.json()["error"]["type"] == "timeout"


def test_api_keys_are_required_compared_whole_and_never_logged(server: Server) -> None:
    nul = server.post("/predict", _job("p-nokey"), key=KEY + "\x00")
    assert nul.status_code == 400  # gunicorn refuses the header itself
    for key in (None, "wrong", KEY[:-1], KEY + "x", KEY.upper(), "", KEY + "\u00e9"):
        response = server.post("/predict", _job("p-nokey"), key=key)
        assert response.status_code == 401, key
        assert _error(response)["type"] == "unauthorized"
        assert response.headers["WWW-Authenticate"] == "Bearer"
    for header in ("Basic " + KEY, KEY, "Bearer", "bearer  "):
        auth = {"Authorization": header}
        response = server.post("/predict", _job("p-nokey"), key=None, headers=auth)
        assert response.status_code == 401, header
    assert server.cloud.result("p-nokey") is None
    second = server.post("/predict", _job("p-key2"), key="second-key-" + "s" * 20)
    assert second.status_code == 200
    assert server.get("/v2/ep/status/p-key2", key="bearer-less").status_code == 401
    logs = server.logs()
    assert KEY not in logs and "second-key-" not in logs
    assert "http.request" in logs


def test_unknown_routes_and_methods_answer_json(server: Server) -> None:
    assert _error(server.get("/nope"))["type"] == "not_found"
    assert server.get("/nope").status_code == 404
    wrong = server.get("/predict")
    assert wrong.status_code == 405 and _error(wrong)["type"] == "method_not_allowed"
    assert "POST" in wrong.headers["Allow"]
    assert server.get("/v2/bad%20id/health").status_code == 404
    assert server.get("/v2/" + "e" * 65 + "/health").status_code == 404
    assert server.get("/robots.txt").status_code == 404


def test_a_frozen_executor_process_ends_with_the_service(
    module_cloud: Cloud, tmp_path: Path
) -> None:
    """ComfyUI's process stopped mid-run: the interrupt at the job timeout goes unanswered, the
    service's process exits 70 to be replaced, and the executor process is killed first (stopped,
    it could not see the service leave)."""
    server = serve(module_cloud, tmp_path / "server.log", JOB_TIMEOUT_S=2)
    child = None
    try:
        started = re.search(r'"executor.process_started".*?"pid": (\d+)', server.logs())
        assert started is not None, server.logs()[-2000:]
        child = int(started.group(1))
        body = _job("p-frozen", sleep_s=60)
        threading.Thread(target=server.post, args=("/predict", body), daemon=True).start()
        deadline = time.monotonic() + 10
        while '"job.started"' not in server.logs():
            assert time.monotonic() < deadline, server.logs()[-2000:]
            time.sleep(0.05)
        os.kill(child, signal.SIGSTOP)
        # Its process exits 70 (gunicorn's arbiter, or Cloud Run, starts another).
        deadline = time.monotonic() + 20
        while (exited := re.search(r'"service.exit".*?"code": (\d+)', server.logs())) is None:
            assert time.monotonic() < deadline, server.logs()[-2000:]
            time.sleep(0.1)
        assert int(exited.group(1)) == ExitCode.WORKER_BROKEN
        assert not alive(child), "the frozen executor process outlived the service"
        assert '"executor.process_killed"' in server.logs()
    finally:
        stop(server)
        if child is not None and alive(child):
            os.kill(child, signal.SIGKILL)
