"""``worker.obs.tracing`` on OpenTelemetry: imported only when ``TRACING=1``.

Needs ``opentelemetry-sdk`` (already there: google-cloud-pubsub depends on it) and, for
``TRACING_EXPORTER=cloud`` (the default), ``opentelemetry-exporter-gcp-trace``, which sends
batches to Cloud Trace with the task's credentials (``roles/cloudtrace.agent``).
``TRACING_EXPORTER=console`` writes each span as one JSON line on stderr instead (local runs).
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from worker.config import Identity, ObservabilitySettings
from worker.errors import ConfigError
from worker.message.job import Delivery

try:
    from opentelemetry import trace
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import (
        BatchSpanProcessor,
        ConsoleSpanExporter,
        SimpleSpanProcessor,
        SpanExporter,
    )
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
except ImportError as exc:  # pragma: no cover - depends on the image
    raise ConfigError(
        f"TRACING=1 needs opentelemetry-sdk ({exc}): pip install opentelemetry-sdk, or unset "
        "TRACING"
    ) from exc

MAX_OPEN = 256  # jobs traced at once; the loop holds at most three
_PROPAGATOR = TraceContextTextMapPropagator()
TRACE_ATTRIBUTES = ("traceparent", "tracestate")


def context_of(attributes: Mapping[str, str]) -> dict[str, str]:
    """The trace-context attributes of a message (what the worker continues from)."""
    return {k: attributes[k] for k in TRACE_ATTRIBUTES if k in attributes}


def exporter_for(name: str) -> SpanExporter:
    if name == "console":
        return ConsoleSpanExporter(
            out=sys.stderr, formatter=lambda span: json.dumps(json.loads(span.to_json())) + "\n"
        )
    try:
        from opentelemetry.exporter.cloud_trace import CloudTraceSpanExporter
    except ImportError as exc:
        raise ConfigError(
            "TRACING=1 with TRACING_EXPORTER=cloud needs the Cloud Trace exporter: pip install "
            "opentelemetry-exporter-gcp-trace (or TRACING_EXPORTER=console, or unset TRACING)"
        ) from exc
    try:
        exporter: SpanExporter = CloudTraceSpanExporter()
    except Exception as exc:  # no credentials or project: say so at start, not per batch
        raise ConfigError(f"TRACING=1: can't create the Cloud Trace exporter: {exc}") from exc
    return exporter


def from_settings(obs: ObservabilitySettings, identity: Identity) -> OtelTracer:
    return OtelTracer(
        exporter_for(obs.tracing_exporter),
        service=obs.service_name(identity),
        version=obs.service_version,
        identity=identity,
    )


@dataclass
class _Job:
    span: Any  # the job's root span
    context: Any  # a context holding it, for its children


class OtelTracer:
    """Builds each job's spans from the timestamps the hooks hand over (monotonic seconds)."""

    def __init__(
        self,
        exporter: SpanExporter,
        *,
        service: str,
        version: str,
        identity: Identity | None = None,
        batch: bool = True,
    ) -> None:
        identity = identity or Identity()
        resource = Resource.create(
            {
                "service.name": service,
                "service.version": version,
                "cloud_run.execution": identity.execution or "",
                "cloud_run.task_index": identity.task_index,
            }
        )
        self._provider = TracerProvider(resource=resource)
        processor = BatchSpanProcessor(exporter) if batch else SimpleSpanProcessor(exporter)
        self._provider.add_span_processor(processor)
        self._tracer = self._provider.get_tracer("comfy-worker")
        self._offset_ns = time.time_ns() - time.monotonic_ns()
        self._open: OrderedDict[str, _Job] = OrderedDict()
        self._lock = threading.Lock()

    def _ns(self, monotonic_s: float) -> int:
        return int(monotonic_s * 1e9) + self._offset_ns

    # -- worker side ----------------------------------------------------------------------

    def received(
        self, delivery: Delivery, job_id: str, pulled_at: float, staged_at: float, staged_s: float
    ) -> None:
        parent = _PROPAGATOR.extract(carrier=context_of(delivery.attributes))
        span = self._tracer.start_span(
            "job",
            context=parent,
            kind=trace.SpanKind.CONSUMER,
            start_time=self._ns(pulled_at),
            attributes={
                "job.id": job_id,
                "messaging.system": "gcp_pubsub" if delivery.source == "pubsub" else "manifest",
                "messaging.message.id": delivery.message_id,
                "messaging.gcp_pubsub.message.delivery_attempt": delivery.delivery_attempt or 0,
            },
        )
        job = _Job(span, trace.set_span_in_context(span))
        with self._lock:
            self._open[delivery.message_id] = job
            while len(self._open) > MAX_OPEN:  # never settled (lost in a crash path): drop
                _, old = self._open.popitem(last=False)
                old.span.end()
        self._child(job, "pull", pulled_at, staged_at)
        self._child(job, "stage", staged_at, staged_at + staged_s)

    def phase(self, message_id: str, name: str, started: float, ended: float | None = None) -> None:
        with self._lock:
            job = self._open.get(message_id)
        if job is not None:
            self._child(job, name, started, time.monotonic() if ended is None else ended)

    def settled(self, delivery: Delivery, action: str, started: float) -> None:
        with self._lock:
            job = self._open.pop(delivery.message_id, None)
        if job is None:
            return
        now = time.monotonic()
        self._child(job, action, started, now)
        job.span.end(end_time=self._ns(now))

    def _child(self, job: _Job, name: str, started: float, ended: float) -> None:
        span = self._tracer.start_span(name, context=job.context, start_time=self._ns(started))
        span.end(end_time=self._ns(max(started, ended)))

    def close(self) -> None:
        self._provider.force_flush(5000)
        self._provider.shutdown()

    # -- producer side --------------------------------------------------------------------

    def stamp(self, messages: Sequence[tuple[str, dict[str, str]]]) -> _Stamp:
        submit = self._tracer.start_span(
            "submit", kind=trace.SpanKind.PRODUCER, attributes={"messages": len(messages)}
        )
        parent = trace.set_span_in_context(submit)
        for job_id, attributes in messages:
            span = self._tracer.start_span(
                "publish",
                context=parent,
                kind=trace.SpanKind.PRODUCER,
                attributes={"job.id": job_id},
            )
            _PROPAGATOR.inject(attributes, context=trace.set_span_in_context(span))
            span.end()
        return _Stamp(self, submit)


@dataclass
class _Stamp:
    tracer: OtelTracer
    span: Any

    def end(self) -> None:
        self.span.end()
        self.tracer.close()
