"""A recording stand-in for the Cloud Run Admin API (v1), reached as gcloud's HTTP proxy.

gcloud turns an API endpoint override into a regional host (``us-central1-run.test``), which no
resolver knows; as gcloud's HTTP proxy, this server receives each request with its absolute URL
and answers it itself. It keeps jobs in memory, so ``gcloud run jobs replace`` sees a 404, creates
the job, and reads it back Ready.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit


@dataclass
class Request:
    method: str
    host: str
    path: str
    body: dict[str, Any] | None


@dataclass
class Recorder:
    requests: list[Request] = field(default_factory=list)
    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def writes(self) -> list[Request]:
        return [r for r in self.requests if r.method in ("POST", "PUT")]


_APIS = ("run.googleapis.com", "serving.knative.dev")


def _ready(job: dict[str, Any]) -> dict[str, Any]:
    """What the API answers: the object as sent, plus a Ready status."""
    job = json.loads(json.dumps(job))
    job.setdefault("metadata", {}).setdefault("generation", 1)
    job["status"] = {
        "observedGeneration": job["metadata"]["generation"],
        "conditions": [{"type": "Ready", "status": "True"}],
    }
    return job


def _handler(rec: Recorder) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _answer(self, code: int, payload: dict[str, Any]) -> None:
            data = json.dumps(payload).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _handle(self) -> None:
            url = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            body = json.loads(raw) if raw else None
            with rec.lock:
                rec.requests.append(Request(self.command, url.netloc, url.path, body))
                # /apis/run.googleapis.com/v1/namespaces/P/jobs[/NAME]
                parts = url.path.strip("/").split("/")
                # /apis/serving.knative.dev/v1/namespaces/P/services[/NAME] for services
                api = parts[1] if len(parts) > 1 else ""
                if len(parts) < 6 or parts[0] != "apis" or api not in _APIS or parts[2] != "v1":
                    self._answer(404, {"error": {"code": 404, "message": "unknown path"}})
                    return
                if self.command == "GET" and len(parts) == 7:
                    job = rec.jobs.get(parts[6])
                    if job is None:
                        msg = f"Resource '{parts[6]}' of kind 'JOB' does not exist."
                        self._answer(404, {"error": {"code": 404, "message": msg}})
                    else:
                        self._answer(200, _ready(job))
                elif self.command in ("POST", "PUT") and body is not None:
                    rec.jobs[body["metadata"]["name"]] = body
                    self._answer(200, _ready(body))
                else:
                    self._answer(400, {"error": {"code": 400, "message": "unexpected"}})

        do_GET = do_POST = do_PUT = _handle

    return Handler


class RecordingProxy:
    """Serve on 127.0.0.1 (a free port) in a thread; ``stop()`` shuts it down."""

    def __init__(self) -> None:
        self.recorder = Recorder()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self.recorder))
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
