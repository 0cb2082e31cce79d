"""Optional traces: one span per job phase, off by default (``TRACING=1`` turns them on).

Each job is one trace branch: a ``job`` span (attribute ``job.id``) with a child per phase,
``pull -> stage -> execute -> upload -> record -> ack`` (``nack`` instead of ``ack`` when the
message goes back). Its parent is the context a producer put in the message's W3C
``traceparent`` / ``tracestate`` attributes (``submit`` does so when it traces), so a job's trace
starts at the ``submit`` that published it.

The hooks in the runner, finisher and settler only hand over monotonic timestamps; spans are
built after the fact, and exported in batches on a background thread. With tracing off the hooks
hit ``NoTracer`` (a few attribute lookups) and OpenTelemetry's SDK and exporters are never
imported (``tests/obs/test_tracing.py`` checks with ``-X importtime``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from worker.config import Identity, ObservabilitySettings
from worker.message.job import Delivery


class Tracer(Protocol):
    def received(
        self, delivery: Delivery, job_id: str, pulled_at: float, staged_at: float, staged_s: float
    ) -> None:
        """A message arrived (pull started at ``pulled_at``) and was prepared (``stage``)."""
        ...

    def phase(self, message_id: str, name: str, started: float, ended: float | None = None) -> None:
        """One phase of a received message's job, from ``started`` to ``ended`` (or now)."""
        ...

    def settled(self, delivery: Delivery, action: str, started: float) -> None:
        """The message was acked or nacked (``action``): the job's trace ends here."""
        ...

    def close(self) -> None:
        """Export what is left (a few seconds at most)."""
        ...


class Stamp(Protocol):
    def end(self) -> None: ...


class NoTracer:
    """Tracing off: every hook returns at once."""

    def received(
        self, delivery: Delivery, job_id: str, pulled_at: float, staged_at: float, staged_s: float
    ) -> None:
        pass

    def phase(self, message_id: str, name: str, started: float, ended: float | None = None) -> None:
        pass

    def settled(self, delivery: Delivery, action: str, started: float) -> None:
        pass

    def close(self) -> None:
        pass

    def stamp(self, messages: Sequence[tuple[str, dict[str, str]]]) -> Stamp:
        return self

    def end(self) -> None:
        pass


NO_TRACER = NoTracer()
ExporterFactory = Callable[[], object]


def build(obs: ObservabilitySettings, identity: Identity) -> Tracer:
    """The tracer ``TRACING`` asks for. Raises ``ConfigError`` when its packages are missing."""
    if not obs.tracing:
        return NO_TRACER
    from worker.obs import tracing_otel

    return tracing_otel.from_settings(obs, identity)


def stamp(
    obs: ObservabilitySettings, identity: Identity, messages: Sequence[tuple[str, dict[str, str]]]
) -> Stamp:
    """Producer side: with tracing on, open a ``submit`` span and put a ``publish`` span's
    context into each message's attributes (``(job_id, attributes)`` pairs, changed in place);
    ``end()`` the stamp once they are published."""
    if not obs.tracing:
        return NO_TRACER
    from worker.obs import tracing_otel

    return tracing_otel.from_settings(obs, identity).stamp(messages)
