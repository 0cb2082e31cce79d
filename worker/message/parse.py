"""Message bytes -> ``Job``, once, at the edge. Accepts job message v1 and the Runpod body.

Anything wrong raises ``Refused``: it carries the error and where the failed result goes. The job
id and output prefix are read first, so a job whose other fields are wrong is still recorded under
its own id and prefix; when the id or prefix themselves are unusable (or the bytes aren't a JSON
object), the result goes to ``<OUTPUT_URI>/<message id>/`` as the design says.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from worker.config import Limits
from worker.errors import ErrorType, JobFailed
from worker.message import jsonsafe
from worker.message.bounded import echo, safe_str
from worker.message.fingerprint import fingerprint, of_refused
from worker.message.job import Delivery, InputFile, Job, OutputFormat
from worker.message.validate import check_inputs, check_metadata, check_prefix, check_workflow
from worker.models.spec import check_models
from worker.obs import logs
from worker.record.output_format import FORMAT_FIELDS, check_output

log = logging.getLogger(__name__)

JOB_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")
# No job id starts with these: "_" names the worker's own top-level folders (_inputs, _dispatch),
# "." its markers in a job's folder and at each prefix level (.namespace, .cancel, .attempt-N).
RESERVED = ("_", ".")


def job_id_problem(value: object) -> str | None:
    """What is wrong with ``value`` as a job id, or None: the one rule for a message's
    ``job_id`` and for a job reference (``worker.message.jobref``, ``status`` and ``cancel``)."""
    if not isinstance(value, str) or not JOB_ID.fullmatch(value) or value in (".", ".."):
        return f"job_id {echo(value)} is invalid: use 1-128 characters from A-Z a-z 0-9 . _ -"
    if value.startswith(RESERVED):
        return (
            f"job_id {echo(value)} starts with {value[0]!r}, which is reserved for the worker's "
            "own folders and markers (_inputs, _dispatch, .namespace, .cancel): start it with a "
            "letter or digit"
        )
    return None


V1_FIELDS = (
    "version",
    "job_id",
    "workflow",
    "pipeline",
    "params",
    "inputs",
    "models",
    "output",
    "metadata",
)
RUNPOD_INPUT_FIELDS = ("workflow", "images", "models", "comfy_org_api_key")
OUTPUT_FIELDS = ("prefix", *FORMAT_FIELDS)
RUNPOD_IGNORED = {  # Runpod delivery options with no meaning here, and what to use instead
    "webhook": "subscribe to the results topic or watch result.json in GCS",
    "policy": "timeouts and retries are set by JOB_TIMEOUT_S and the subscription",
}


class PipelineRenderer(Protocol):
    def render(self, name: str, params: Mapping[str, Any], key: str | None = None) -> Any:
        """Return an object with ``workflow`` and ``params`` (and optionally ``models``, raw
        model entries its parameters add, and ``output``, the pipeline's default
        ``OutputFormat``); raise ``JobFailed`` if invalid. ``key`` names the job (its prefix
        and id): an omitted seed is derived from it, the same on every delivery."""
        ...


class Refused(Exception):
    """The message can't become a job. ``job_id``/``prefix`` say where its result goes;
    ``fingerprint`` (``worker.message.fingerprint``) what it was, when its body was a JSON
    object: a job id already used by other content is not this message's folder."""

    def __init__(
        self, job_id: str, prefix: str, error: JobFailed, fingerprint: str | None = None
    ) -> None:
        super().__init__(error.message)
        self.job_id = job_id
        self.prefix = prefix
        self.error = error
        self.fingerprint = fingerprint


@dataclass(frozen=True)
class Parser:
    limits: Limits
    output_bucket: str
    pipelines: PipelineRenderer | None = None

    def parse(self, delivery: Delivery) -> Job:
        """The job, or ``Refused``: whatever the message holds, nothing else escapes."""
        job_id, prefix, digest = delivery.message_id, "", None
        try:
            body = self._body(delivery)
            digest = fingerprint(body)
            job_id = self._job_id(delivery, body)
            if "input" in body and "workflow" not in body and "pipeline" not in body:
                job = self._runpod(job_id, body, delivery)
            else:
                prefix = self._prefix(body)
                job = self._v1(job_id, prefix, body)
            return dataclasses.replace(job, fingerprint=digest)
        except Refused:
            raise
        except JobFailed as exc:
            raise Refused(job_id, prefix, exc, of_refused(digest)) from exc
        except MemoryError as exc:
            raise Refused(
                job_id, prefix, JobFailed(ErrorType.OOM, _NO_MEMORY), of_refused(digest)
            ) from exc
        except Exception as exc:  # a message must never crash the worker: it fails alone
            logs.event(
                log,
                "parse.unexpected",
                logging.WARNING,
                exc_info=True,
                job_id=job_id,
                message_id=delivery.message_id,
                error=f"{type(exc).__name__}: {safe_str(exc, 500)}",
            )
            raise Refused(
                job_id,
                prefix,
                _invalid(
                    f"the message could not be read ({type(exc).__name__}: "
                    f"{safe_str(exc, 200)}); check it against the job message format"
                ),
                of_refused(digest),
            ) from exc

    def _body(self, delivery: Delivery) -> dict[str, Any]:
        size = len(delivery.data)
        if size > self.limits.max_message_bytes:
            self._refuse(
                delivery,
                f"message is {size} bytes; the limit is "
                f"{self.limits.max_message_bytes} (MAX_MESSAGE_BYTES): put large inputs "
                'in GCS and pass them as {"name": ..., "uri": "gs://..."}',
            )
        try:
            body = jsonsafe.loads(delivery.data.decode("utf-8"))
        except UnicodeDecodeError as exc:
            self._refuse(
                delivery,
                f"message data is not UTF-8 text ({exc.reason} at byte "
                f"{exc.start}): send the job as UTF-8 JSON",
            )
        except jsonsafe.Refusal as exc:
            self._refuse(delivery, f"message data is {_as_clause(str(exc))}")
        if not isinstance(body, dict):
            self._refuse(
                delivery,
                f"a job must be a JSON object, got {type(body).__name__}: "
                'send {"workflow": {...}} or a Runpod body {"input": {...}}',
            )
        return dict(body)

    def _job_id(self, delivery: Delivery, body: Mapping[str, Any]) -> str:
        given = body.get("job_id")
        if given is None:  # absent or null: the attribute, else the message id
            given = delivery.attributes.get("job_id")
        if given is None:
            return delivery.message_id
        problem = job_id_problem(given)
        if problem is not None:
            self._refuse(delivery, f"{problem} (the result is recorded under the message id)")
        return str(given)

    def _prefix(self, body: Mapping[str, Any]) -> str:
        output = body.get("output", {})
        if not isinstance(output, dict) or set(output) - set(OUTPUT_FIELDS):
            raise _invalid(
                f'"output" must be an object with some of {list(OUTPUT_FIELDS)}, e.g. '
                '{"prefix": "campaign-7/batch-2", "format": "webp", "quality": 90}'
            )
        return check_prefix(output.get("prefix", ""), self.limits.max_prefix_chars)

    def _v1(self, job_id: str, prefix: str, body: Mapping[str, Any]) -> Job:
        unknown = sorted(set(body) - set(V1_FIELDS))
        if unknown:
            raise _invalid(
                f"unknown field(s) {echo(unknown)}; a job message has: {list(V1_FIELDS)}"
            )
        version = body.get("version", 1)
        if version != 1 or isinstance(version, bool):
            raise _invalid(f"version {echo(version)} is not supported; use 1")
        workflow, pipeline, params, rendered = self._workflow(body, f"{prefix}/{job_id}")
        models = body.get("models", [])
        if rendered is not None and isinstance(models, list):
            models = models + list(getattr(rendered, "models", None) or [])
        return Job(
            job_id=job_id,
            workflow=workflow,
            inputs=check_inputs(body.get("inputs", []), self.limits, self.output_bucket),
            output_prefix=prefix,
            metadata=check_metadata(body.get("metadata", {}), self.limits.max_metadata_bytes),
            form="v1",
            pipeline=pipeline,
            params=params,
            models=check_models(models, self.limits),
            output_format=check_output(body.get("output", {}), _default_output(rendered)),
        )

    def _workflow(
        self, body: Mapping[str, Any], key: str
    ) -> tuple[dict[str, Any], str | None, dict[str, Any] | None, Any]:
        has_workflow, has_pipeline = "workflow" in body, "pipeline" in body
        if has_workflow == has_pipeline:
            raise _invalid(
                'a job needs exactly one of "workflow" (a ComfyUI API-format prompt) '
                'or "pipeline" (a name from pipelines/, with "params")'
            )
        if has_workflow:
            if "params" in body:
                raise _invalid('"params" only goes with "pipeline"')
            return check_workflow(body["workflow"]), None, None, None
        name, params = body["pipeline"], body.get("params", {})
        if not isinstance(name, str) or not isinstance(params, dict):
            raise _invalid('"pipeline" must be a name and "params" an object')
        if self.pipelines is None:
            raise _invalid("this worker has no pipelines configured (PIPELINES_DIR)")
        rendered = self.pipelines.render(name, params, key)
        return check_workflow(rendered.workflow), name, dict(rendered.params), rendered

    def _runpod(self, job_id: str, body: Mapping[str, Any], delivery: Delivery) -> Job:
        unknown = sorted(set(body) - {"input", *RUNPOD_IGNORED})  # noqa: RUF100
        if unknown:
            raise _invalid(
                f'unknown field(s) {echo(unknown)} next to "input"; a Runpod body has '
                '"input" (and optionally webhook/policy, which are ignored here)'
            )
        inner = body["input"]
        if not isinstance(inner, dict):
            raise _invalid('"input" must be an object: {"workflow": {...}, "images": [...]}')
        unknown = sorted(set(inner) - set(RUNPOD_INPUT_FIELDS))
        if unknown:
            raise _invalid(
                f'unknown field(s) {echo(unknown)} in "input"; '
                f"accepted: {list(RUNPOD_INPUT_FIELDS)}"
            )
        if "workflow" not in inner:
            raise _invalid('"input.workflow" is required (a ComfyUI API-format prompt)')
        images = inner.get("images", [])
        if not isinstance(images, list):
            raise _invalid('"input.images" must be a list of {"name": ..., "image": <base64>}')
        inputs = [_runpod_image(i, image) for i, image in enumerate(images)]
        warnings = [
            f"ignored Runpod field {name!r}: {RUNPOD_IGNORED[name]}"
            for name in sorted(set(body) & set(RUNPOD_IGNORED))
        ]
        if "comfy_org_api_key" in inner:
            warnings.append("ignored input.comfy_org_api_key: API nodes are disabled here")
        return Job(
            job_id=job_id,
            workflow=check_workflow(inner["workflow"]),
            inputs=check_inputs(inputs, self.limits, self.output_bucket),
            form="runpod",
            warnings=tuple(warnings),
            models=check_models(inner.get("models", []), self.limits),
        )

    def _refuse(self, delivery: Delivery, message: str) -> Any:
        raise Refused(delivery.message_id, "", _invalid(message))


def _runpod_image(index: int, image: Any) -> Any:
    """Runpod's ``{"name", "image"}`` becomes v1's ``{"name", "data"}`` (data URLs allowed)."""
    if not isinstance(image, dict) or set(image) != {"name", "image"}:
        raise _invalid(f'input.images[{index}] must be {{"name": "x.png", "image": <base64>}}')
    return {"name": image["name"], "data": image["image"]}


def _invalid(message: str) -> JobFailed:
    return JobFailed(ErrorType.INVALID_JOB, message)


def _default_output(rendered: Any) -> OutputFormat | None:
    default = getattr(rendered, "output", None)
    return default if isinstance(default, OutputFormat) else None


def _as_clause(refusal: str) -> str:
    """``not valid JSON: ...`` stays; ``the integer ...`` becomes ``not accepted: the ...``."""
    return refusal if refusal.startswith("not ") else f"not accepted: {refusal}"


_NO_MEMORY = "the worker ran out of host memory reading this message; send a smaller one"


__all__ = ["InputFile", "Parser", "Refused"]
