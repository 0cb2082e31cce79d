"""Cost fields: the share-out of a task's wall time over its jobs, against a hand-computed example
and as a property over any sequence of jobs."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.deploy import jobfiles
from worker.config import CostSettings, Settings
from worker.obs.cost import NOT_EXECUTED, CostMeter, Shape, rate_usd_s

# 0.0001867 + 8 x 0.000018 + 32 x 0.000002 = 0.0003947 USD/s, $1.42092 an hour
RATE = 0.0003947


def test_rate_of_the_default_task_is_the_sum_of_its_parts() -> None:
    default = CostSettings()
    assert rate_usd_s(default.prices, default.shape) == pytest.approx(RATE, abs=1e-12)
    assert rate_usd_s(default.prices, default.shape) * 3600 == pytest.approx(1.42092)
    # The smallest L4 shape Cloud Run allows: 4 vCPU, 16 GiB.
    small = rate_usd_s(default.prices, Shape(4, 16))
    assert small == pytest.approx(0.0001867 + 0.000072 + 0.000032)


def test_hand_computed_task() -> None:
    """Boot 20 s; A runs 20-30 s, B 35-41 s (after a 5 s gap), C 41.5-44.5 s; exit at 104.5 s.

    A carries the boot: 30 s x 0.0003947 = $0.011841. B carries the gap: 11 s = $0.0043417.
    C: 3.5 s = $0.00138145. The 60 s after C (IDLE_EXIT_S) is on no result: $0.023682.
    """
    meter = CostMeter(RATE, started_at=0.0)
    a = meter.charge(10.0, ended_at=30.0)
    b = meter.charge(6.0, ended_at=41.0)
    c = meter.charge(3.0, ended_at=44.5)
    assert (a.gpu_seconds, a.billed_s) == (10.0, 30.0)
    assert a.cost_usd == pytest.approx(0.011841)
    assert (b.gpu_seconds, b.billed_s) == (6.0, 11.0)
    assert b.cost_usd == pytest.approx(0.0043417)
    assert (c.gpu_seconds, c.billed_s) == (3.0, 3.5)
    assert c.cost_usd == pytest.approx(0.00138145)
    tail_s, tail_usd = meter.unattributed(now=104.5)
    assert tail_s == 60.0
    assert tail_usd == pytest.approx(0.023682)
    total = a.cost_usd + b.cost_usd + c.cost_usd + tail_usd
    assert total == pytest.approx(104.5 * RATE)
    assert c.fields() == {"gpu_seconds": 3.0, "billed_s": 3.5, "cost_usd": 0.00138145}
    assert NOT_EXECUTED.fields() == {"gpu_seconds": 0.0, "billed_s": 0.0, "cost_usd": 0.0}


@given(
    boot=st.floats(0, 600),
    jobs=st.lists(st.tuples(st.floats(0, 100), st.floats(0, 3600)), min_size=1, max_size=30),
    rate=st.floats(0, 0.01),
)
def test_the_shares_add_up_to_the_task_and_cover_each_execution(
    boot: float, jobs: list[tuple[float, float]], rate: float
) -> None:
    """Whatever the gaps and executions: the shares sum to the wall time up to the last
    execution's end, each share covers its own execution, and no share is negative."""
    meter = CostMeter(rate, started_at=0.0)
    now, shares = boot, []
    for gap, execution in jobs:
        now += gap + execution
        shares.append(meter.charge(execution, ended_at=now))
    assert sum(s.billed_s for s in shares) == pytest.approx(now, rel=1e-9, abs=1e-6)
    assert sum(s.cost_usd for s in shares) == pytest.approx(now * rate, rel=1e-9, abs=1e-9)
    for share in shares:
        assert share.billed_s >= share.gpu_seconds - 1e-6
    assert meter.unattributed(now=now + 7.0)[0] == pytest.approx(7.0)


def test_prices_and_shape_are_configurable_and_match_jobs_yaml() -> None:
    settings = Settings.from_env(
        {"PRICE_GPU_USD_S": "0.0002909", "TASK_VCPUS": "4", "TASK_MEMORY_GIB": "16"}
    )
    assert settings.cost.meter(0.0).rate == pytest.approx(0.0002909 + 4 * 0.000018 + 16 * 0.000002)
    limits = jobfiles.container(jobfiles.load("jobs.yaml"))["resources"]["limits"]
    default = Settings.from_env({}).cost
    assert (str(int(default.vcpus)), f"{int(default.memory_gib)}Gi") == (
        limits["cpu"],
        limits["memory"],
    )
