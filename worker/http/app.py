"""The HTTP app: ``create_app()`` for ``functions-framework --target=app`` (``main.py``).

Routes (all answers JSON; errors ``{"error": {"type", "message"}}``, ``worker.http.edge``):

| route | what |
|---|---|
| ``GET /``, ``GET /healthz`` | 200 at once, whatever the executor is doing (liveness) |
| ``GET /ready`` | 200 once the executor has booted, else 503 (the startup probe) |
| ``POST /predict[?inline=1]`` | run one job (v1 or Runpod body) here; its result document |
| ``POST /v2/{endpoint}/run`` | queue it on the jobs topic: ``{"id", "status": "IN_QUEUE"}`` |
| ``POST /v2/{endpoint}/runsync`` | run it here (or queue it and wait ``RUNSYNC_WAIT_S``) |
| ``GET /v2/{endpoint}/status/{id}`` | Runpod's status (``worker.http.runpod``) |
| ``POST /v2/{endpoint}/cancel/{id}`` | write the cancel marker (``worker.record.cancel``) |
| ``GET /v2/{endpoint}/health`` | backlog, running, completed and failed jobs |
| ``POST /v2/{endpoint}/purge-queue`` | refused unless ``PURGE_QUEUE_ENABLED`` |

The endpoint id is ignored (any ``[A-Za-z0-9_-]{1,64}``): the service is the endpoint. Ids are
job references (``worker.message.jobref``). A job runs through ``worker.http.service`` (the job
worker's own runner) or is queued through ``worker.http.gateway``; this module only maps requests
and answers.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any

from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from worker.adapters.storage.base import ObjectStore
from worker.config import Settings
from worker.errors import ConfigError
from worker.exitcodes import ExitCode
from worker.http import runpod
from worker.http.edge import ErrorKind, HttpError, KeyCheck, json_response, load_keys, read_body
from worker.http.gateway import Gateway
from worker.http.service import NotReady, Outcome, Service
from worker.http.slot import Busy
from worker.loop.runner import ExitReason
from worker.message.bounded import safe_str
from worker.message.jobref import BadReference, JobRef, ref_of_folder
from worker.obs import logs
from worker.record.jobstate import JobState
from worker.record.result import STATUSES

log = logging.getLogger(__name__)

ENDPOINT_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
# A recorded result's HTTP status on /predict: the request was wrong (400), the job's content
# failed (422), it ran out of time (504), the worker could not run it (500), cancelled (409).
PREDICT_STATUS = {
    "invalid_job": 400,
    "invalid_workflow": 400,
    "missing_model": 400,
    "input_error": 400,
    "execution_error": 422,
    "oom": 422,
    "timeout": 504,
    "cancelled": 409,
}
ROUTES = Map(
    [
        Rule("/", endpoint="root", methods=["GET"]),
        Rule("/healthz", endpoint="healthz", methods=["GET"]),
        Rule("/ready", endpoint="ready", methods=["GET"]),
        Rule("/predict", endpoint="predict", methods=["POST"]),
        Rule("/v2/<endpoint_id>/run", endpoint="run", methods=["POST"]),
        Rule("/v2/<endpoint_id>/runsync", endpoint="runsync", methods=["POST"]),
        Rule("/v2/<endpoint_id>/status/<job>", endpoint="status", methods=["GET", "POST"]),
        Rule("/v2/<endpoint_id>/cancel/<job>", endpoint="cancel", methods=["POST"]),
        Rule("/v2/<endpoint_id>/health", endpoint="health", methods=["GET"]),
        Rule("/v2/<endpoint_id>/purge-queue", endpoint="purge", methods=["POST"]),
    ]
)
OPEN = {"root", "healthz", "ready"}  # probes carry no API key


class App:
    """A functions-framework HTTP function: called with each request, returns its response."""

    def __init__(
        self,
        settings: Settings,
        keys: KeyCheck,
        store: ObjectStore,
        gateway: Gateway,
        service: Service | None,
    ) -> None:
        assert settings.output_uri is not None
        self._settings = settings
        self._output_uri = settings.output_uri
        self._keys = keys
        self._store = store
        self._gateway = gateway
        self._service = service
        self._max_body = settings.limits.max_message_bytes

    def __call__(self, request: Request) -> Response:
        started = time.monotonic()
        endpoint = "-"
        try:
            endpoint, args = ROUTES.bind_to_environ(request.environ).match()
            response = self._route(endpoint, args, request)
        except HttpError as exc:
            response = exc.response()
        except MethodNotAllowed as exc:
            allowed = ", ".join(sorted(exc.valid_methods or []))
            response = HttpError(
                405, ErrorKind.METHOD_NOT_ALLOWED, f"use {allowed} here"
            ).response()
            response.headers["Allow"] = allowed
        except NotFound:
            response = HttpError(404, ErrorKind.NOT_FOUND, "no such route").response()
        except HTTPException as exc:  # a redirect or another routing answer: refused plainly
            response = HttpError(404, ErrorKind.NOT_FOUND, f"no such route ({exc.code})").response()
        except Exception as exc:  # a bug here: logged with its traceback, never sent
            logs.event(
                log,
                "http.internal_error",
                logging.ERROR,
                exc_info=True,
                route=endpoint,
                error=f"{type(exc).__name__}: {safe_str(exc, 300)}",
            )
            response = HttpError(
                500, ErrorKind.INTERNAL, "internal error (the service's log has the details)"
            ).response()
        if endpoint not in ("healthz", "ready", "root"):
            logs.event(
                log,
                "http.request",
                method=request.method,
                route=endpoint,
                status=response.status_code,
                elapsed_ms=round((time.monotonic() - started) * 1000, 2),
            )
        return response

    # -- routes -------------------------------------------------------------------------------

    def _route(self, endpoint: str, args: Mapping[str, Any], request: Request) -> Response:
        if "endpoint_id" in args and not ENDPOINT_ID.fullmatch(args["endpoint_id"]):
            raise HttpError(404, ErrorKind.NOT_FOUND, "an endpoint id is [A-Za-z0-9_-]{1,64}")
        if endpoint not in OPEN:
            self._keys.check(request)
        if endpoint in ("root", "healthz"):
            return json_response({"status": "ok", "ready": self._ready()})
        if endpoint == "ready":
            if self._ready():
                return json_response({"ready": True})
            raise self._not_ready()
        handler: Callable[[Mapping[str, Any], Request], Response] = getattr(self, f"_{endpoint}")
        return handler(args, request)

    def _predict(self, args: Mapping[str, Any], request: Request) -> Response:
        body = read_body(request, self._max_body)
        outcome = self._run_here(body)
        doc = self._document(outcome)
        if request.args.get("inline", "").lower() in ("1", "true", "yes"):
            doc["output"] = runpod.outputs(
                doc, self._store, self._settings.http.inline_max_bytes, with_result=False
            )
        error = doc.get("error") if isinstance(doc.get("error"), dict) else None
        status = 200 if doc.get("status") == "succeeded" else 500
        if error is not None:
            status = PREDICT_STATUS.get(str(error.get("type")), 500)
        return json_response(doc, status)

    def _run(self, args: Mapping[str, Any], request: Request) -> Response:
        ref = self._gateway.submit(read_body(request, self._max_body))
        return json_response({"id": ref.token, "status": "IN_QUEUE"})

    def _runsync(self, args: Mapping[str, Any], request: Request) -> Response:
        body = read_body(request, self._max_body)
        inline = self._settings.http.inline_max_bytes
        if self._service is None:  # a gateway: queue it, wait a bounded time
            ref = self._gateway.submit(body)
            state = self._gateway.wait(ref, self._settings.http.runsync_wait_s)
        else:
            doc = self._document(self._run_here(body))
            folder = str(doc.get("result_uri", "")).removesuffix("/result.json")
            ref = ref_of_folder(self._output_uri, folder)
            state = JobState(_state_of(doc), folder, result=doc)
        output = runpod.outputs(state.result, self._store, inline) if state.result else None
        return json_response(runpod.status_doc(ref.token, state, output))

    def _status(self, args: Mapping[str, Any], request: Request) -> Response:
        ref = self._ref(args["job"])
        return json_response(runpod.status_doc(ref.token, self._gateway.state(ref)))

    def _cancel(self, args: Mapping[str, Any], request: Request) -> Response:
        read_body(request, self._max_body, required=False)  # Runpod's client sends none
        ref = self._ref(args["job"])
        outcome = self._gateway.cancel(ref, by=f"http {request.remote_addr or ''}".strip())
        return json_response({"id": ref.token, "status": runpod.RUNPOD_STATUS[outcome.state.state]})

    def _health(self, args: Mapping[str, Any], request: Request) -> Response:
        service = self._service
        running = int(service is not None and service.running)
        phase = service.phase if service is not None else "gateway"
        doc = {
            "jobs": {
                "completed": service.completed if service else 0,
                "failed": service.failed if service else 0,
                "inProgress": running,
                "inQueue": self._gateway.backlog(),
                "retried": 0,
            },
            "workers": {
                "idle": int(phase == "ready" and not running),
                "initializing": int(phase == "booting"),
                "ready": int(phase == "ready"),
                "running": running,
                "throttled": 0,
                "unhealthy": int(phase == "failed"),
            },
        }
        return json_response(doc)

    def _purge(self, args: Mapping[str, Any], request: Request) -> Response:
        read_body(request, self._max_body, required=False)
        removed = self._gateway.purge()
        return json_response({"removed": removed or 0, "status": "completed"})

    # -- helpers ------------------------------------------------------------------------------

    def _ready(self) -> bool:
        if self._service is None:
            return True  # a gateway has nothing to boot
        self._service.start()
        return self._service.ready()

    def _not_ready(self) -> HttpError:
        if self._service is not None and self._service.phase == "failed":
            return HttpError(503, ErrorKind.UNAVAILABLE, "the executor failed; see the logs", 30)
        return HttpError(503, ErrorKind.NOT_READY, "the executor is still booting", 5)

    def _run_here(self, body: bytes) -> Outcome:
        if self._service is None:
            raise HttpError(
                403,
                ErrorKind.FORBIDDEN,
                "this instance runs no jobs (HTTP_EXECUTE=false): POST /v2/{endpoint}/run",
            )
        try:
            return self._service.run(body)
        except Busy as exc:
            raise HttpError(429, ErrorKind.BUSY, str(exc), retry_after_s=exc.retry_after_s) from exc
        except NotReady:
            raise self._not_ready() from None

    def _document(self, outcome: Outcome) -> dict[str, Any]:
        """The recorded result of a job run here, or the error that took its place."""
        if outcome.settled == "ack" and outcome.document is not None:
            doc = json.loads(outcome.document)
            assert isinstance(doc, dict)
            return doc
        if outcome.settled == "ack":  # another attempt of this job_id recorded it first
            raise HttpError(
                409,
                ErrorKind.CONFLICT,
                "another attempt of this job_id ran at the same time and its result stands: "
                "read it with GET /v2/{endpoint}/status/{id}",
            )
        if outcome.settled == "timeout":
            raise HttpError(504, ErrorKind.TIMEOUT, "the job did not end in time; see status")
        raise HttpError(
            503,
            ErrorKind.UNAVAILABLE,
            "the job was handed back unrun or unrecorded (a storage or Pub/Sub fault, or the "
            "instance is stopping); send it again",
            retry_after_s=5,
        )

    def _ref(self, token: str) -> JobRef:
        try:
            return JobRef.parse(token, self._settings.limits.max_prefix_chars)
        except BadReference as exc:
            raise HttpError(400, ErrorKind.INVALID_REQUEST, f"invalid job id: {exc}") from None


def _state_of(doc: Mapping[str, Any]) -> Any:
    status = doc.get("status")
    return status if status in STATUSES else "failed"


def create_app(
    env: Mapping[str, str],
    on_halt: Callable[[ExitReason], None] | None = None,
) -> Callable[[Request], Response]:
    """The HTTP function for ``functions-framework --target=app``, which takes only a plain
    function (not a callable object): it calls the ``App`` that ``build_app`` wires."""
    handler = build_app(env, on_halt)

    def app(request: Request) -> Response:
        return handler(request)

    return app


def build_app(
    env: Mapping[str, str],
    on_halt: Callable[[ExitReason], None] | None = None,
) -> App:
    """Read the settings and wire the app; nothing starts until the first request.

    A configuration error exits at once (78) naming the variables, as the CLI does.
    """
    from worker.http.wiring import wire

    try:
        settings = Settings.from_env(env)
        settings.require("OUTPUT_URI", *(("RESULTS_TOPIC",) if settings.http.execute else ()))
        keys = KeyCheck(load_keys(settings.http.api_keys_file, settings.http.api_keys))
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(ExitCode.CONFIG) from None
    logs.setup(
        settings.log_level,
        static={"execution": settings.identity.execution, "service": settings.identity.job},
    )
    store, gateway, service = wire(settings, on_halt or _exit_process)
    logs.event(
        log,
        "http.configured",
        execute=settings.http.execute,
        api_keys=keys.enabled,
        jobs_topic=settings.jobs_topic is not None,
    )
    return App(settings, keys, store, gateway, service)


def framework_error(exc: HTTPException) -> Response:
    """What functions-framework's own Flask app answers before our function is called (a path
    its routing can't match, such as one holding a newline): JSON too, never an HTML page."""
    status = exc.code or 400
    kind = {404: ErrorKind.NOT_FOUND, 405: ErrorKind.METHOD_NOT_ALLOWED}.get(
        status, ErrorKind.INVALID_REQUEST
    )
    return HttpError(status, kind, str(exc.description or exc.name)).response()


def _exit_process(reason: ExitReason) -> None:
    """The runner stopped for good: let Cloud Run (or gunicorn's arbiter) replace this process."""
    code = ExitCode.OK if reason is ExitReason.STOPPED else ExitCode.WORKER_BROKEN
    logs.event(log, "service.exit", logging.ERROR, reason=reason.value, code=int(code))
    logging.shutdown()
    os._exit(int(code))
