"""``--download DIR``: fetch a finished job's outputs to ``DIR/<job_id>/<name>``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from worker.adapters.storage.base import ObjectStore

MAX_OUTPUT_BYTES = 50 * 1024**3  # no limit worth having on what the user asked to fetch


def download_outputs(store: ObjectStore, result: dict[str, Any], directory: Path) -> list[Path]:
    """Download every output the result lists; names that would leave the job's folder are
    refused (they can't come from this worker, but a result is only JSON)."""
    folder = (directory / str(result["job_id"])).resolve()
    paths = []
    for output in result.get("outputs") or []:
        dest = (folder / str(output["name"])).resolve()
        if not dest.is_relative_to(folder):
            raise ValueError(f"output name {output['name']!r} escapes {folder}")
        dest.parent.mkdir(parents=True, exist_ok=True)
        store.download(str(output["uri"]), dest, MAX_OUTPUT_BYTES)
        paths.append(dest)
    return paths
