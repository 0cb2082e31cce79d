"""What a job costs: per-second list prices, and the task's wall time shared out over its jobs.

Pure functions and one small stateful meter; no clock of their own unless given one, no I/O.

**Prices** are Cloud Run's list prices for jobs (instance-based billing) in tier-1 regions, read
on ``PRICE_DATE``: an L4 GPU-second without zonal redundancy, a vCPU-second, a GiB-second. A task
is billed for its whole life (start-up, idle, shutdown included) at
``gpu + vcpus x vcpu + memory_gib x gib`` per second. Every price is configurable
(``worker.config.CostSettings``); the docs repeat them with their date.

**Share-out.** A task's wall clock is cut at the end of each job's execution: job k is charged
the seconds from the end of job k-1's execution (for the first job: from the process start, so
it carries the boot) to the end of its own. Summed over the task's results that is exactly the
task's billed time up to its last execution; idle gaps between jobs go to the job that ended the
gap. What comes after the last execution (waiting ``IDLE_EXIT_S``, shutting down) cannot be put
on a result already written (``result.json`` is write-once): ``worker.exit`` logs it as
``unattributed_s`` / ``unattributed_usd``, and ``python -m worker cost`` adds it back as an
estimate per task. Jobs that never executed (refused, already done) are charged nothing; their
few milliseconds go to the next executed job.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

PRICE_DATE = "2026-08"  # when CostSettings' default prices were read from the price pages


@dataclass(frozen=True)
class Prices:
    """USD per second: the GPU-second, vCPU-second and GiB-second. The defaults are declared once,
    in ``worker.config.CostSettings`` (its ``prices``)."""

    gpu_s: float
    vcpu_s: float
    gib_s: float


GPU_ZONAL_REDUNDANCY_S = 0.0002909  # L4 GPU-second with zonal redundancy (same date)
RUNPOD_L4_FLEX_S = 0.00019  # Runpod serverless, "L4, A5000, 3090" 24 GB, flex worker
RUNPOD_L4_ACTIVE_S = 0.00013  # the same, active (always-on) worker


@dataclass(frozen=True)
class Shape:
    """The task's size, as jobs.yaml asks for it (one L4 always); the default is
    ``worker.config.CostSettings().shape``."""

    vcpus: float
    memory_gib: float


def rate_usd_s(prices: Prices, shape: Shape) -> float:
    """What one second of one task costs."""
    return prices.gpu_s + shape.vcpus * prices.vcpu_s + shape.memory_gib * prices.gib_s


@dataclass(frozen=True)
class JobCost:
    gpu_seconds: float  # wall time the job held the GPU: its execution
    billed_s: float  # its share of the task's wall time (see the module docstring)
    cost_usd: float  # billed_s at the task's rate

    def fields(self) -> dict[str, Any]:
        """The result document's (and log line's) cost fields."""
        return {
            "gpu_seconds": round(self.gpu_seconds, 4),
            "billed_s": round(self.billed_s, 4),
            "cost_usd": round(self.cost_usd, 8),
        }


NOT_EXECUTED = JobCost(0.0, 0.0, 0.0)


class CostMeter:
    """Cuts one task's wall clock at each execution's end. Called from one thread (the loop)."""

    def __init__(
        self,
        rate: float,
        started_at: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate = rate
        self._clock = clock
        self._last_cut = started_at

    def charge(self, execution_s: float, ended_at: float | None = None) -> JobCost:
        """The cost of a job whose execution took ``execution_s`` and ended at ``ended_at``
        (default: now); the next job's share starts here."""
        end = self._clock() if ended_at is None else ended_at
        billed = max(0.0, end - self._last_cut)
        self._last_cut = max(self._last_cut, end)
        return JobCost(max(0.0, execution_s), billed, billed * self.rate)

    def tail_fields(self) -> dict[str, Any]:
        """``worker.exit``'s fields: the time after the last cut, on no result."""
        seconds, usd = self.unattributed()
        return {"unattributed_s": round(seconds, 3), "unattributed_usd": round(usd, 8)}

    def unattributed(self, now: float | None = None) -> tuple[float, float]:
        """Seconds (and USD) since the last cut: what no result carries."""
        seconds = max(0.0, (self._clock() if now is None else now) - self._last_cut)
        return seconds, seconds * self.rate


def meter_for(prices: Prices, shape: Shape, started_at: float) -> CostMeter:
    return CostMeter(rate_usd_s(prices, shape), started_at)
