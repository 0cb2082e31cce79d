"""The Runpod-compatible API with Runpod's own Python client (``runpod`` on PyPI), pointed at the
service by ``runpod.endpoint_url_base``: run (queued, drained by a real job worker), status in
each state, output, run_sync (run on the service), cancel before start / while running / after
the end, health; and the same routes with hand-made worst-case ids."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import runpod
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from tests.fakes.scripted import workflow
from tests.http.conftest import KEY, Server


@pytest.fixture
def endpoint(server: Server, monkeypatch: pytest.MonkeyPatch) -> runpod.Endpoint:
    monkeypatch.setattr(runpod, "endpoint_url_base", f"{server.base}/v2")
    monkeypatch.setattr(runpod, "api_key", KEY)
    return runpod.Endpoint("my-endpoint")


@pytest.fixture
def job_worker(server: Server, tmp_path: Path) -> Iterator[Any]:
    """Starts ``python -m worker run`` on the same cloud when called; stopped at the end."""
    started: list[subprocess.Popen[bytes]] = []

    def start() -> subprocess.Popen[bytes]:
        process = server.cloud.spawn_worker(
            tmp_path / "worker.log", IDLE_EXIT_S=5, CANCEL_CHECK_S=0.5
        )
        started.append(process)
        return process

    yield start
    for process in started:
        process.terminate()
        process.wait(15)


def _until(check: Any, timeout_s: float = 20) -> Any:
    deadline = time.monotonic() + timeout_s
    while not (value := check()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)
    return value


def test_run_status_output_with_the_runpod_client(
    endpoint: runpod.Endpoint, server: Server, job_worker: Any
) -> None:
    outputs = [{"name": "fox.png", "bytes": 500}, {"name": "fox.txt", "text": "a fox"}]
    job = endpoint.run({"workflow": workflow(sleep_s=1.5, outputs=outputs)})
    assert job.status() == "IN_QUEUE"
    job_worker()
    progress = runpod.Endpoint("my-endpoint").rp_client  # a fresh status, not the cached one
    assert _until(lambda: progress.get(f"my-endpoint/status/{job.job_id}")["status"]
                  == "IN_PROGRESS")  # fmt: skip
    running = progress.get(f"my-endpoint/status/{job.job_id}")
    assert running["workerId"]
    output = job.output(timeout=30)
    assert job.status() == "COMPLETED"
    assert [i["filename"] for i in output["images"]] == ["fox.png"]
    assert output["images"][0]["type"] == "gcs_uri"
    assert output["images"][0]["data"].startswith(f"gs://{server.cloud.bucket}/results/")
    assert [f["filename"] for f in output["files"]] == ["fox.txt"]
    assert output["result"]["status"] == "succeeded" and output["result"]["form"] == "runpod"
    status = progress.get(f"my-endpoint/status/{job.job_id}")
    assert status["executionTime"] >= 1500 and status["delayTime"] >= 0
    assert status["id"] == job.job_id


def test_run_sync_runs_on_the_service_and_inlines_outputs(endpoint: runpod.Endpoint) -> None:
    output = endpoint.run_sync({"workflow": workflow(outputs=[{"name": "s.png", "bytes": 200}])})
    assert output["images"][0]["type"] == "base64" and len(output["images"][0]["data"]) > 200
    failed = endpoint.rp_client.post(
        "my-endpoint/runsync", {"input": {"workflow": workflow(fail="execution_error")}}
    )
    assert failed["status"] == "FAILED" and failed["error"].startswith("execution_error:")
    assert endpoint.rp_client.get(f"my-endpoint/status/{failed['id']}")["status"] == "FAILED"


def test_cancel_before_start_while_running_and_after_the_end(
    endpoint: runpod.Endpoint, server: Server, job_worker: Any, tmp_path: Path
) -> None:
    record = tmp_path / "runs.txt"
    queued = endpoint.run({"workflow": workflow(record=str(record))})
    assert queued.cancel() == {"id": queued.job_id, "status": "CANCELLED"}
    long = endpoint.run({"workflow": workflow(sleep_s=60, record=str(record))})
    job_worker()
    client = endpoint.rp_client
    _until(lambda: client.get(f"my-endpoint/status/{long.job_id}")["status"] == "IN_PROGRESS")
    asked = time.monotonic()
    assert long.cancel()["status"] == "CANCELLED"
    final = _until(lambda: server.cloud.result(long.job_id))
    assert time.monotonic() - asked < 5 and final["status"] == "cancelled"
    assert client.get(f"my-endpoint/status/{long.job_id}")["status"] == "CANCELLED"
    first = _until(lambda: server.cloud.result(queued.job_id))
    assert first["status"] == "cancelled"
    assert record.read_text().split() == [long.job_id], "the queued one never ran"
    done = client.post("my-endpoint/runsync", {"input": {"workflow": workflow()}})
    assert done["status"] == "COMPLETED"
    after = client.post(f"my-endpoint/cancel/{done['id']}", None)
    assert after == {"id": done["id"], "status": "COMPLETED"}
    assert (server.cloud.result(done["id"]) or {}).get("status") == "succeeded"


def test_health_and_purge_queue(endpoint: runpod.Endpoint) -> None:
    health = endpoint.health()
    assert health["workers"]["ready"] == 1 and health["jobs"]["inProgress"] == 0
    assert health["jobs"]["completed"] >= 0
    with pytest.raises(Exception, match="403"):
        endpoint.purge_queue()


def test_a_v1_body_with_a_prefix_gets_an_id_that_names_its_folder(server: Server) -> None:
    body = {"job_id": "pf-1", "workflow": workflow(), "output": {"prefix": "camp/b2"}}
    answer = server.post("/v2/ep/run", body).json()
    assert answer == {"id": "camp~b2~pf-1", "status": "IN_QUEUE"}
    assert server.get("/v2/ep/status/camp~b2~pf-1").json() == {
        "id": "camp~b2~pf-1",
        "status": "IN_QUEUE",
    }
    synced = server.post("/v2/ep/runsync", {**body, "job_id": "pf-2"}).json()
    assert synced["id"] == "camp~b2~pf-2" and synced["status"] == "COMPLETED"
    assert server.cloud.result("pf-2", prefix="camp/b2") is not None


def test_run_refuses_a_body_that_could_never_run_and_queues_nothing(server: Server) -> None:
    before = server.cloud.backlog()
    for body in ({"input": {"workflow": "nope"}}, {"bogus": 1}, {"job_id": "../x", "workflow": {}}):
        response = server.post("/v2/ep/run", body)
        assert response.status_code == 400, body
        assert response.json()["error"]["type"] == "invalid_job"
    assert server.cloud.backlog() == before


def one_server(examples: int) -> settings:
    return settings(
        max_examples=examples,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture],
    )


ids = st.text(st.characters(codec="utf-8"), max_size=80) | st.from_regex(
    r"[A-Za-z0-9._~=-]{1,40}", fullmatch=True
)


@one_server(60)
@given(job=ids)
def test_any_id_in_a_url_gets_a_json_answer_never_500(server: Server, job: str) -> None:
    from urllib.parse import quote

    path = quote(job, safe="")
    for method in ("status", "cancel"):
        call = server.get if method == "status" else server.post
        response = call(f"/v2/ep/{method}/{path}")
        assert response.status_code in (200, 400, 404, 405), (job, response.text[:200])
        assert response.headers["Content-Type"] == "application/json"
        if response.status_code == 200:
            assert response.json()["status"] in ("IN_QUEUE", "CANCELLED", "COMPLETED", "FAILED")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)


@one_server(60)
@given(body=st.binary(max_size=300) | json_values)
def test_any_body_to_run_gets_a_json_answer_never_500(server: Server, body: Any) -> None:
    import json

    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    response = server.post("/v2/ep/run", data, headers={"Content-Type": "application/json"})
    assert response.status_code in (200, 400), (body, response.text[:200])
    assert response.headers["Content-Type"] == "application/json"


@one_server(40)
@given(header=st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=60))
def test_any_authorization_header_is_refused_unless_it_is_a_key(
    server: Server, header: str
) -> None:
    assume(header == header.strip())  # requests refuses to send padded header values
    response = server.get("/v2/ep/health", key=None, headers={"Authorization": header})
    scheme, _, given = header.partition(" ")
    expected = 200 if scheme.lower() == "bearer" and given.strip() == KEY else 401
    assert response.status_code == expected, header
    assert response.headers["Content-Type"] == "application/json"


def test_the_one_right_header_is_let_in(server: Server) -> None:
    for header in (f"Bearer {KEY}", f"bearer {KEY}", f"BEARER   {KEY}"):
        assert server.get("/v2/ep/health", key=None, headers={"Authorization": header}).ok
