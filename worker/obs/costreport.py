"""``python -m worker cost``: what results cost, and what a load would cost here and on Runpod.

Pure: result documents in, a ``Summary`` and ``Projection`` rows out, then text or HTML. The
command (``worker.commands.cost``) reads the documents.

Measured: images (image outputs), GPU-seconds (``gpu_seconds``), spend (``cost_usd``, each job's
share of its task's time, see ``worker.obs.cost``) plus an estimate of each task's idle tail (on no
result: ``idle_s`` per task seen, ``IDLE_EXIT_S`` by default), cost per 1,000 images.

Projected, for ``jobs`` a month: task-seconds = jobs x the measured task-seconds per job (tails
included), priced per platform. Cloud Run bills the task's whole life per second; the 4 vCPU /
16 GiB shape is priced at the same seconds (a CPU-bound workflow would take longer there).
Runpod's flex workers bill while a worker is up, so the same seconds; active workers run all
month, as many as the load keeps busy (job seconds / month, rounded up).
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from worker.obs.cost import (
    GPU_ZONAL_REDUNDANCY_S,
    PRICE_DATE,
    RUNPOD_L4_ACTIVE_S,
    RUNPOD_L4_FLEX_S,
    Prices,
    Shape,
    rate_usd_s,
)

MONTH_H = 730.0  # hours in an average month


@dataclass(frozen=True)
class Summary:
    results: int
    succeeded: int
    failed: int
    images: int
    gpu_seconds: float
    billed_s: float  # the jobs' shares of their tasks' time
    cost_usd: float  # the same, in USD (as the results say)
    tasks: int  # distinct task attempts that wrote these results
    tail_s: float  # estimated idle tails of those tasks
    tail_usd: float

    @property
    def spend_usd(self) -> float:
        return self.cost_usd + self.tail_usd

    @property
    def per_1000_images(self) -> float | None:
        return self.spend_usd / self.images * 1000 if self.images else None

    @property
    def task_s_per_job(self) -> float:
        return (self.billed_s + self.tail_s) / self.results if self.results else 0.0

    @property
    def job_s_per_job(self) -> float:
        return self.billed_s / self.results if self.results else 0.0

    @property
    def images_per_job(self) -> float:
        return self.images / self.results if self.results else 0.0


def summarize(docs: Iterable[Mapping[str, Any]], idle_s: float, rate: float) -> Summary:
    results = succeeded = images = 0
    gpu = billed = cost = 0.0
    tasks: set[tuple[Any, ...]] = set()
    for doc in docs:
        results += 1
        succeeded += doc.get("status") == "succeeded"
        images += sum(1 for o in doc.get("outputs") or [] if o.get("kind") == "image")
        gpu += float(doc.get("gpu_seconds") or 0.0)
        billed += float(doc.get("billed_s") or 0.0)
        cost += float(doc.get("cost_usd") or 0.0)
        if doc.get("billed_s"):  # a task that executed it
            w = doc.get("worker") or {}
            tasks.add((w.get("execution"), w.get("task_index"), w.get("task_attempt")))
    tail = len(tasks) * idle_s
    return Summary(
        results, succeeded, results - succeeded, images, gpu, billed, cost, len(tasks), tail,
        tail * rate,
    )  # fmt: skip


@dataclass(frozen=True)
class Projection:
    platform: str
    usd_s: float  # price of one task/worker-second
    seconds: float  # billed seconds in the month
    monthly_usd: float
    per_1000_images: float | None


def project(
    summary: Summary,
    jobs: float,
    hours: float,
    prices: Prices,
    s_per_job: float | None = None,
    images_per_job: float | None = None,
) -> list[Projection]:
    """Monthly cost of ``jobs`` jobs spread over ``hours`` hours, per platform. ``s_per_job``
    and ``images_per_job`` replace the measured figures when given."""
    task_s = jobs * (summary.task_s_per_job if s_per_job is None else s_per_job)
    busy_s = jobs * (summary.job_s_per_job if s_per_job is None else s_per_job)
    images = jobs * (summary.images_per_job if images_per_job is None else images_per_job)
    zonal = Prices(GPU_ZONAL_REDUNDANCY_S, prices.vcpu_s, prices.gib_s)
    rows = []
    for shape in (Shape(8, 32), Shape(4, 16)):
        for label, p in (("no zonal redundancy", prices), ("zonal redundancy", zonal)):
            rate = rate_usd_s(p, shape)
            name = f"Cloud Run L4, {shape.vcpus:g} vCPU / {shape.memory_gib:g} GiB, {label}"
            rows.append((name, rate, task_s))
    rows.append(("Runpod L4 24 GB, flex", RUNPOD_L4_FLEX_S, task_s))
    workers = math.ceil(busy_s / (hours * 3600)) if busy_s else 0
    rows.append((f"Runpod L4 24 GB, active ({workers} always on)", RUNPOD_L4_ACTIVE_S, 0.0))
    out = []
    for name, rate, seconds in rows:
        billed = seconds if seconds else workers * hours * 3600
        usd = billed * rate
        per_1000 = usd / images * 1000 if images else None
        out.append(Projection(name, rate, billed, usd, per_1000))
    return out


def _usd(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"${value:,.{digits}f}"


def summary_lines(s: Summary, idle_s: float) -> list[str]:
    return [
        f"results            {s.results} ({s.succeeded} succeeded, {s.failed} failed)",
        f"images             {s.images}",
        f"GPU-seconds        {s.gpu_seconds:,.1f}",
        f"task-seconds       {s.billed_s:,.1f} on results + {s.tail_s:,.1f} estimated idle tails "
        f"({s.tasks} task(s) x {idle_s:g} s)",
        f"spend              {_usd(s.spend_usd, 4)} ({_usd(s.cost_usd, 4)} on results + "
        f"{_usd(s.tail_usd, 4)} tails)",
        f"per 1,000 images   {_usd(s.per_1000_images, 4)}",
        f"per job            {s.task_s_per_job:,.2f} task-s ({s.job_s_per_job:,.2f} on results + "
        f"{s.task_s_per_job - s.job_s_per_job:,.2f} tails), "
        f"{s.gpu_seconds / max(s.results, 1):,.2f} GPU-s: the projection's basis",
    ]


def table(rows: list[Projection], load: str) -> list[str]:
    width = max(len(r.platform) for r in rows)
    head = (
        f"{'platform'.ljust(width)}  {'$/s':>9}  {'hours':>9}  {'monthly':>12}  {'/1k images':>10}"
    )
    lines = [f"projection: {load} (list prices of {PRICE_DATE})", head, "-" * len(head)]
    for r in rows:
        lines.append(
            f"{r.platform.ljust(width)}  {r.usd_s:9.7f}  {r.seconds / 3600:9.1f}  "
            f"{_usd(r.monthly_usd):>12}  {_usd(r.per_1000_images, 3):>10}"
        )
    return lines


def _svg_bars(rows: list[Projection]) -> str:
    """A horizontal bar chart of the monthly cost per platform, as inline SVG."""
    top = max((r.monthly_usd for r in rows), default=0.0) or 1.0
    bar_h, label_w, chart_w = 26, 360, 420
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{label_w + chart_w + 110}" '
        f'height="{len(rows) * bar_h + 30}" font-family="sans-serif" font-size="13">'
    ]
    for i, r in enumerate(rows):
        y = 10 + i * bar_h
        w = max(1.0, chart_w * r.monthly_usd / top)
        color = "#4a6fa5" if r.platform.startswith("Cloud Run") else "#c9793a"
        parts.append(
            f'<text x="{label_w - 8}" y="{y + 17}" text-anchor="end">{html.escape(r.platform)}'
            f'</text><rect x="{label_w}" y="{y + 4}" width="{w:.1f}" height="{bar_h - 8}" '
            f'fill="{color}"/><text x="{label_w + w + 6:.1f}" y="{y + 17}">'
            f"{_usd(r.monthly_usd)}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def render_html(summary: Summary, idle_s: float, rows: list[Projection], load: str) -> str:
    cells = "".join(
        f"<tr><td>{html.escape(r.platform)}</td><td>{r.usd_s:.7f}</td>"
        f"<td>{r.seconds / 3600:,.1f}</td><td>{_usd(r.monthly_usd)}</td>"
        f"<td>{_usd(r.per_1000_images, 3)}</td></tr>"
        for r in rows
    )
    measured = "<br>".join(html.escape(line) for line in summary_lines(summary, idle_s))
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>comfy-worker cost</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:70em}}
table{{border-collapse:collapse}}td,th{{border:1px solid #bbb;padding:4px 8px;text-align:right}}
td:first-child,th:first-child{{text-align:left}}.m{{font-family:monospace;white-space:pre}}</style>
</head><body><h1>comfy-worker: cost</h1>
<h2>Measured</h2><p class="m">{measured}</p>
<h2>Projection: {html.escape(load)}</h2>
<p>Monthly cost per platform at the measured task-seconds per job (list prices of {PRICE_DATE};
check them before deciding).</p>
{_svg_bars(rows)}
<table><tr><th>platform</th><th>$/s</th><th>hours</th><th>monthly</th><th>per 1,000 images</th>
</tr>{cells}</table></body></html>
"""
