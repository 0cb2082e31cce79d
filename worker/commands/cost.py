"""``python -m worker cost``: spend of finished jobs, and a monthly projection for a load.

Reads every ``result.json`` under a ``gs://`` prefix (default ``OUTPUT_URI``; a backfill's
``--prefix`` folder works too), a local folder of them, or a JSONL file of result documents
(saved completion events). See ``worker.obs.costreport`` for what is measured and how it projects.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from worker.config import Settings
from worker.errors import ConfigError
from worker.exitcodes import ExitCode
from worker.obs import costreport
from worker.obs.cost import rate_usd_s
from worker.record.result import RESULT_NAME


def register(sub: Any) -> None:
    p = sub.add_parser(
        "cost",
        help="spend, GPU-seconds and cost per 1,000 images of finished jobs; projections",
        description="Add up the results under SOURCE (a gs:// prefix, default OUTPUT_URI; a "
        "folder; or a JSONL file of result documents): images, GPU-seconds, spend, cost per "
        "1,000 images. With --rps or --jobs, project a month on Cloud Run L4 (zonal redundancy "
        "on/off, 8 vCPU/32 GiB and 4 vCPU/16 GiB) and Runpod L4 (flex, active).",
    )
    p.add_argument("source", nargs="?", metavar="SOURCE", help="gs://bucket/prefix, DIR or FILE")
    load = p.add_mutually_exclusive_group()
    load.add_argument("--rps", type=float, help="sustained jobs per second to project")
    load.add_argument("--jobs", type=float, help="jobs per month to project")
    p.add_argument(
        "--hours",
        type=float,
        default=costreport.MONTH_H,
        help="hours a month the load runs (default: all month, 730)",
    )
    p.add_argument("--seconds-per-job", type=float, help="task-seconds per job instead of measured")
    p.add_argument("--images-per-job", type=float, help="images per job instead of measured")
    p.add_argument("--idle-s", type=float, help="each task's idle tail (default IDLE_EXIT_S)")
    p.add_argument("--html", type=Path, metavar="FILE", help="also write an HTML report")
    p.add_argument("--json", action="store_true", help="print the figures as JSON")
    p.set_defaults(handler=main)


def _gcs_results(prefix: str, project: str | None) -> Iterator[dict[str, Any]]:
    from google.cloud import storage

    bucket, _, key = prefix.removeprefix("gs://").partition("/")
    client = storage.Client(project=project)
    blobs = [
        b
        for b in client.list_blobs(bucket, prefix=f"{key}/" if key else None)
        if b.name.endswith(f"/{RESULT_NAME}") or b.name == RESULT_NAME
    ]
    with ThreadPoolExecutor(16, "cost-read") as pool:
        for data in pool.map(lambda b: b.download_as_bytes(), blobs):
            yield json.loads(data)


def _local_results(path: Path) -> Iterator[dict[str, Any]]:
    if path.is_dir():
        for found in sorted(path.rglob(RESULT_NAME)):
            yield json.loads(found.read_text())
        return
    for line in path.read_text().splitlines():
        if line.strip():
            yield json.loads(line)


def results(source: str, settings: Settings) -> list[dict[str, Any]]:
    try:
        if source.startswith("gs://"):
            return list(_gcs_results(source.rstrip("/"), settings.project))
        return list(_local_results(Path(source)))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"can't read results from {source}: {exc}") from exc


def main(args: argparse.Namespace, settings: Settings) -> ExitCode:
    source = args.source or settings.output_uri
    if source is None:
        raise ConfigError("cost needs SOURCE or OUTPUT_URI")
    prices = settings.cost.prices
    idle_s = settings.timeouts.idle_exit_s if args.idle_s is None else args.idle_s
    docs = results(source, settings)
    summary = costreport.summarize(docs, idle_s, rate_usd_s(prices, settings.cost.shape))
    lines = [f"source             {source}", *costreport.summary_lines(summary, idle_s)]
    rows: list[costreport.Projection] = []
    load = ""
    if args.rps is not None or args.jobs is not None:
        jobs = args.jobs if args.jobs is not None else args.rps * args.hours * 3600
        load = f"{jobs:,.0f} jobs/month" + (f" ({args.rps:g} jobs/s)" if args.rps else "")
        load += f" over {args.hours:g} h"
        rows = costreport.project(
            summary, jobs, args.hours, prices, args.seconds_per_job, args.images_per_job
        )
        lines += ["", *costreport.table(rows, load)]
    if args.json:
        doc = {"summary": summary.__dict__ | {"spend_usd": summary.spend_usd,
               "per_1000_images": summary.per_1000_images},
               "projection": [r.__dict__ for r in rows]}  # fmt: skip
        print(json.dumps(doc, indent=2))
    else:
        print("\n".join(lines))
    if args.html is not None:
        args.html.write_text(costreport.render_html(summary, idle_s, rows, load))
        print(f"wrote {args.html}", file=sys.stderr)
    return ExitCode.OK
