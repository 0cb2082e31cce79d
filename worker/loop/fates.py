"""The one place each message's fate is decided and applied.

Called only from the control loop (``worker.loop.runner``), on its thread. A message ends in one of
three ways: recorded (a result, or the re-announced result of an earlier attempt) and then acked;
handed back (nacked) now; or handed back later, once the pull in flight has returned, when the
worker is stopping. ``settle`` is the last step of each and happens once per message: it tells
``Health``, queues the ack or nack for the settler thread, and releases the job in the ledger.
"""

from __future__ import annotations

import logging

from worker.errors import Stopped, Transient, WorkerBroken
from worker.loop.finisher import Finisher
from worker.loop.ledger import Ledger
from worker.loop.prepare import Prepared
from worker.loop.settle import Action, Decision, Halt, Health, Settler, decide, final
from worker.message.bounded import safe_str
from worker.obs import logs
from worker.obs.cost import NOT_EXECUTED, CostMeter
from worker.record.eventtypes import Executed, Recording

log = logging.getLogger(__name__)

RECORD_ROUNDS = 2  # a recording that failed past its retries is tried once more, from the kept
# outputs, before the message is given back (the job is not run again for an upload)
HAND_BACK = Decision(Action.NACK, record_result=False, halt=Halt.STOP)


class Fates:
    def __init__(
        self,
        finisher: Finisher,
        settler: Settler,
        ledger: Ledger,
        health: Health,
        meter: CostMeter,
    ) -> None:
        self._meter = meter  # the task's time, shared out over the jobs it executed
        self._finisher = finisher
        self._settler = settler
        self._ledger = ledger
        self._health = health
        self.recording: dict[int, Recording] = {}  # at the finisher, or waiting to go there
        self._deferred: list[Recording] = []  # handed over once the next job has started
        self.held_back: list[tuple[Prepared, BaseException | None]] = []  # nacked at the end

    def decide(
        self,
        prepared: Prepared,
        outcome: BaseException | None,
        ran: Executed | None = None,
        *,
        pulling: bool = False,
    ) -> None:
        """Decide what happens to ``prepared`` after ``outcome`` (None: succeeded)."""
        if prepared.settled:
            return
        if prepared.existing is not None:  # done earlier: announce it again, then ack
            self._record(Recording(prepared, None))
            return
        outcome = final(outcome, prepared.delivery)
        decision = decide(outcome)
        if decision.record_result:
            result = ran.result if ran is not None else None
            seconds = ran.seconds if ran is not None else 0.0
            # Only a job that executed is charged: a refused one took no GPU time.
            cost = self._meter.charge(seconds) if ran is not None else NOT_EXECUTED
            self._record(Recording(prepared, outcome, result, seconds, cost=cost))
        elif decision.halt is not Halt.NO and pulling:
            # The worker stops: nacked once the pull in flight returns. Nacked now, the message
            # could go straight back to that pull and cost a second delivery attempt.
            self._health.record(decision)
            self.held_back.append((prepared, outcome))
        else:
            self.settle(prepared, decision, outcome)

    def recorded(self, item: Recording) -> None:
        """The finisher recorded it (or re-announced an earlier result): ack."""
        self.recording.pop(id(item), None)
        outcome = item.outcome if item.prepared.existing is None else None
        self.settle(item.prepared, decide(outcome), outcome)

    def record_failed(self, item: Recording, error: BaseException, *, closing: bool) -> None:
        """Recording failed: once more from the kept outputs, or hand the message back."""
        self.recording.pop(id(item), None)
        prepared = item.prepared
        retry = isinstance(error, Transient) and prepared.rounds + 1 < RECORD_ROUNDS
        if retry and not closing:
            prepared.rounds += 1
            logs.event(
                log,
                "recording retried from the kept outputs",
                logging.WARNING,
                job_id=prepared.ctx.job_id,
                error=safe_str(error, 1000),
            )
            self._record(item)
            return
        if not isinstance(error, Transient | WorkerBroken | Stopped):
            error = WorkerBroken(
                f"recording failed: {type(error).__name__}: {safe_str(error, 1000)}"
            )
        self.settle(prepared, decide(error), error)

    def flush(self) -> None:
        """Hand the waiting recordings to the finisher (the loop calls this when the executor
        is not between two jobs: see ``Runner._between_jobs``)."""
        for item in self._deferred:
            self._finisher.submit(item)
        self._deferred.clear()

    def finisher_died(self) -> None:
        """What the finisher held will never be recorded: hand it back."""
        gone = WorkerBroken("the finisher thread died")
        for item in list(self.recording.values()):
            self.settle(item.prepared, decide(gone), gone)
        self.recording.clear()
        self._deferred.clear()

    def hand_back(self, prepared: Prepared, reason: BaseException | None) -> None:
        self.settle(prepared, HAND_BACK, reason)

    def settle(self, prepared: Prepared, decision: Decision, reason: BaseException | None) -> None:
        if prepared.settled:
            return
        prepared.settled = True
        self._health.record(decision)
        self._settler.submit(prepared, decision, reason)
        self._ledger.let_go(prepared.ctx.folder)

    def _record(self, item: Recording) -> None:
        self.recording[id(item)] = item
        self._deferred.append(item)
