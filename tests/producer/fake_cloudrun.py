"""A local HTTP stand-in for the Cloud Run Admin API v2 (and Cloud Monitoring's timeSeries.list).

It answers the REST calls the real ``google.cloud.run_v2`` clients make with ``transport="rest"``:
``POST /v2/{job}:run``, ``GET /v2/{operation}``, ``GET /v2/{job}/executions`` (paged), and records
every request so tests can assert on what the client sent. No Cloud Run emulator exists; this is
the seam's only stand-in.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

EXECUTION_TYPE = "type.googleapis.com/google.cloud.run.v2.Execution"


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    body: dict[str, Any] | None


@dataclass
class FakeCloudRun:
    page_size: int = 2  # small, so listing exercises the client's paging
    executions: list[dict[str, Any]] = field(default_factory=list)  # newest first
    requests: list[Request] = field(default_factory=list)
    backlog_points: list[int] = field(default_factory=list)  # newest last
    operation_without_metadata: bool = False  # run's first answer lacks the execution
    jobs: set[str] | None = None  # when set, other job names answer 404 NOT_FOUND
    lock: threading.Lock = field(default_factory=threading.Lock)
    url: str = ""

    def add_execution(
        self,
        job: str,
        task_count: int,
        *,
        done: bool = False,
        succeeded: int = 0,
        created: datetime | None = None,
    ) -> dict[str, Any]:
        n = len(self.executions) + 1
        execution: dict[str, Any] = {
            "name": f"{job}/executions/{job.rsplit('/', 1)[-1]}-{n:04d}",
            "taskCount": task_count,
            "succeededCount": succeeded,
            "createTime": (created or datetime.now(UTC)).isoformat().replace("+00:00", "Z"),
        }
        if done:
            execution["completionTime"] = execution["createTime"]
        self.executions.insert(0, execution)
        return execution

    def runs(self) -> list[Request]:
        return [r for r in self.requests if r.method == "POST" and r.path.endswith(":run")]

    # -- request handling ----------------------------------------------------------------------

    def handle(self, method: str, raw_path: str, body: dict[str, Any] | None) -> dict[str, Any]:
        url = urlparse(raw_path)
        with self.lock:
            self.requests.append(Request(method, url.path, parse_qs(url.query), body))
            job = url.path[len("/v2/") :].split(":")[0].removesuffix("/executions")
            if "/jobs/" in job and self.jobs is not None and job not in self.jobs:
                raise LookupError(f"Resource '{job}' was not found")
            if method == "POST" and url.path.endswith(":run"):
                return self._run(url.path[len("/v2/") : -len(":run")], body or {})
            if method == "GET" and "/operations/" in url.path:
                return self._operation(url.path[len("/v2/") :])
            if method == "GET" and url.path.endswith("/executions"):
                return self._list(parse_qs(url.query))
            if method == "GET" and url.path.endswith("/timeSeries"):
                return self._time_series()
        raise LookupError(f"{method} {raw_path}")

    def _run(self, job: str, body: dict[str, Any]) -> dict[str, Any]:
        overrides = body.get("overrides", {})
        execution = self.add_execution(job, int(overrides.get("taskCount", 1)))
        location = job.split("/jobs/", maxsplit=1)[0]
        operation: dict[str, Any] = {"name": f"{location}/operations/op-{len(self.executions)}"}
        if not self.operation_without_metadata:
            operation["metadata"] = {"@type": EXECUTION_TYPE, **execution}
        return operation

    def _operation(self, name: str) -> dict[str, Any]:
        number = int(name.rsplit("-", 1)[-1])
        execution = self.executions[len(self.executions) - number]
        return {"name": name, "done": False, "metadata": {"@type": EXECUTION_TYPE, **execution}}

    def _list(self, query: dict[str, list[str]]) -> dict[str, Any]:
        start = int(query.get("pageToken", ["0"])[0] or 0)
        page = self.executions[start : start + self.page_size]
        doc: dict[str, Any] = {"executions": page}
        if start + self.page_size < len(self.executions):
            doc["nextPageToken"] = str(start + self.page_size)
        return doc

    def _time_series(self) -> dict[str, Any]:
        now, n = datetime.now(UTC), len(self.backlog_points)
        points = [
            {
                "interval": {"endTime": (now - timedelta(minutes=n - 1 - i)).isoformat()},
                "value": {"int64Value": str(value)},
            }
            for i, value in enumerate(self.backlog_points)
        ]
        return {"timeSeries": [{"points": list(reversed(points))}]} if points else {}


class _Handler(BaseHTTPRequestHandler):
    fake: FakeCloudRun

    def _answer(self, method: str) -> None:
        length = int(self.headers.get("content-length", 0) or 0)
        body = json.loads(self.rfile.read(length)) if length else None
        try:
            doc, status = self.fake.handle(method, self.path, body), 200
        except LookupError as exc:
            error = {"code": 404, "message": str(exc), "status": "NOT_FOUND"}
            doc, status = {"error": error}, 404
        data = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self._answer("GET")

    def do_POST(self) -> None:
        self._answer("POST")

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def serve(fake: FakeCloudRun | None = None) -> Iterator[FakeCloudRun]:
    fake = fake or FakeCloudRun()
    handler = type("Handler", (_Handler,), {"fake": fake})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    fake.url = f"http://127.0.0.1:{server.server_port}"
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
