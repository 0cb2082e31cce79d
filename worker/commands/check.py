"""``python -m worker check``: a pre-flight that says in seconds why the worker would not work.

It checks, in order: COMFYUI_DIR, the GPU (visible, and torch's CUDA build fits the driver),
that ComfyUI's core imports, that the models are there (MODELS_DIR, and every manifest entry in
the cache or in GCS at its size), and that the subscription, the results topic and the output
bucket answer. Every check runs and prints one JSON line with its ``state``: ``ok``, ``failed``,
``skipped`` (nothing to check here, e.g. no GPU on a CPU host) or ``not configured`` (its
variables are unset). The exit code is that of the first failure (``CheckCode``), so a script or an
alert can tell the causes apart; ``skipped`` and ``not configured`` are not failures.
"""

from __future__ import annotations

import argparse
import functools
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, Literal

from worker.config import Settings
from worker.errors import ConfigError


class CheckCode(IntEnum):
    OK = 0
    COMFYUI_MISSING = 10  # COMFYUI_DIR unset or not a ComfyUI checkout
    COMFYUI_IMPORT = 11  # torch or ComfyUI failed to import (or bad COMFYUI_ARGS)
    GPU_NOT_VISIBLE = 12  # a GPU is required (COMFYUI_DEVICE=cuda, --require-gpu) and absent
    CUDA_MISMATCH = 13  # torch's CUDA build does not fit the driver (or is CPU-only)
    MODELS_MISSING = 14  # MODELS_DIR absent, manifest unreadable, or a model found nowhere
    SUBSCRIPTION_UNREACHABLE = 15  # JOBS_SUBSCRIPTION missing or Pub/Sub not answering
    TOPIC_UNREACHABLE = 16  # RESULTS_TOPIC / PROGRESS_TOPIC missing or not answering
    BUCKET_UNREACHABLE = 17  # OUTPUT_URI's bucket missing or not readable


class Failed(Exception):
    def __init__(self, code: CheckCode, detail: str) -> None:
        super().__init__(detail)
        self.code = code


@dataclass(frozen=True)
class NotChecked:
    """What a check returns when it had nothing to check; not a failure."""

    state: Literal["skipped", "not configured"]
    detail: str


TIMEOUT_S = 5.0
CHECKS = ("comfyui", "gpu", "models", "services")


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "check",
        help="pre-flight: ComfyUI, GPU, models, Pub/Sub and GCS, with an exit code per cause",
        description="Check in a few seconds whether this worker can run: ComfyUI imports, the "
        "GPU is visible and torch's CUDA fits the driver, the models are present, and the "
        "subscription, topic and bucket answer. One JSON line per check on stdout; exit 0, or "
        "the code of the first failure (10-17, see docs/executor.md).",
    )
    parser.add_argument("--skip", default="", help=f"comma-separated checks to skip: {CHECKS}")
    parser.add_argument(
        "--require-gpu",
        action="store_true",
        help="fail when no GPU is visible (implied by COMFYUI_DEVICE=cuda)",
    )
    parser.set_defaults(handler=main)


def check_comfyui_dir(settings: Settings, args: argparse.Namespace) -> str:
    from worker.executor.comfy.boot import check_dir

    try:
        return str(check_dir(settings.comfy.comfyui_dir))
    except ConfigError as exc:
        raise Failed(CheckCode.COMFYUI_MISSING, str(exc)) from exc


def check_gpu(settings: Settings, args: argparse.Namespace) -> str | NotChecked:
    from worker.executor.comfy import gpu

    required = args.require_gpu or settings.comfy.device == "cuda"
    if settings.comfy.device == "cpu" and not required:
        return NotChecked("skipped", "COMFYUI_DEVICE=cpu")
    if not gpu.nvidia_visible():
        if required:
            raise Failed(CheckCode.GPU_NOT_VISIBLE, "no NVIDIA device is visible")
        return NotChecked("skipped", "no NVIDIA device visible: ComfyUI will run on CPU")
    try:
        import torch
    except Exception as exc:
        raise Failed(CheckCode.COMFYUI_IMPORT, f"torch failed to import: {exc}") from exc
    problem = gpu.cuda_problem(torch.version.cuda, gpu.driver_cuda_version())
    if problem is not None:
        raise Failed(CheckCode.CUDA_MISMATCH, problem)
    if not torch.cuda.is_available():
        raise Failed(CheckCode.GPU_NOT_VISIBLE, "torch sees no CUDA device")
    return f"{torch.cuda.get_device_name(0)}, torch {torch.__version__}"


def check_comfyui_import(settings: Settings, args: argparse.Namespace) -> str:
    from worker.executor.comfy.boot import check_dir, probe
    from worker.executor.comfy.requirements import missing_requirement

    try:
        return f"ComfyUI {probe(settings.comfy)} imports"
    except ConfigError as exc:
        raise Failed(CheckCode.COMFYUI_IMPORT, str(exc)) from exc
    except BaseException as exc:
        lacking = missing_requirement(exc, check_dir(settings.comfy.comfyui_dir))
        detail = str(lacking) if lacking else f"{type(exc).__name__}: {exc}"
        raise Failed(CheckCode.COMFYUI_IMPORT, detail) from exc


def check_models(settings: Settings, args: argparse.Namespace) -> str | NotChecked:
    from worker.models import gcs
    from worker.models.sync import ModelSync

    c = settings.comfy
    if c.models_dir is not None and not c.models_dir.is_dir():
        raise Failed(CheckCode.MODELS_MISSING, f"MODELS_DIR={c.models_dir} is not a directory")
    try:
        sync = ModelSync.from_settings(settings)
    except ConfigError as exc:
        raise Failed(CheckCode.MODELS_MISSING, str(exc)) from exc
    if sync is None:
        if c.models_dir is None:
            return NotChecked("not configured", "neither MODELS_DIR nor MODEL_MANIFEST is set")
        return f"MODELS_DIR={c.models_dir}; no MODEL_MANIFEST"
    local = sync.missing()
    client = None
    nowhere = []
    for entry in local:  # not cached yet: ``run`` fetches them if GCS has them at their size
        try:
            client = client or gcs.client()
            size = gcs.object_size(client, entry.source)
        except Exception as exc:
            size, entry_note = None, f" ({type(exc).__name__})"
        else:
            entry_note = "" if size is None else f" (is {size} bytes, manifest {entry.size})"
        if size != entry.size:
            nowhere.append(f"{entry.relpath} from {entry.source}{entry_note}")
    if nowhere:
        raise Failed(
            CheckCode.MODELS_MISSING,
            "not in the cache nor in GCS at the manifest's size: " + "; ".join(nowhere),
        )
    cached = len(sync.entries) - len(local)
    return f"{len(sync.entries)} models: {cached} cached, {len(local)} to fetch from GCS"


def _reachable(code: CheckCode, what: str, call: Callable[[], object]) -> str:
    from google.api_core import exceptions as gexc

    try:
        call()
    except gexc.NotFound as exc:
        raise Failed(code, f"{what} does not exist") from exc
    except gexc.PermissionDenied:
        return f"{what}: the service answered (this identity may not read its metadata)"
    except Exception as exc:
        raise Failed(code, f"{what}: {type(exc).__name__}: {exc}") from exc
    return f"{what} is reachable"


def check_services(settings: Settings, args: argparse.Namespace) -> list[str] | NotChecked:
    import google.cloud.pubsub_v1 as pubsub_v1
    from google.cloud import storage

    # Clients are made inside each call so that missing credentials fail that check only.
    targets: list[tuple[CheckCode, str, Callable[[], object]]] = []
    if settings.jobs_subscription:
        name = settings.jobs_subscription
        targets.append(
            (
                CheckCode.SUBSCRIPTION_UNREACHABLE,
                name,
                lambda: pubsub_v1.SubscriberClient().get_subscription(
                    subscription=name, timeout=TIMEOUT_S
                ),
            )
        )
    for topic in (settings.results_topic, settings.comfy.progress_topic):
        if topic:
            targets.append(
                (
                    CheckCode.TOPIC_UNREACHABLE,
                    topic,
                    functools.partial(
                        lambda t: pubsub_v1.PublisherClient().get_topic(topic=t, timeout=TIMEOUT_S),
                        topic,
                    ),
                )
            )
    if settings.output_uri:
        bucket = settings.output_bucket
        targets.append(
            (
                CheckCode.BUCKET_UNREACHABLE,
                f"gs://{bucket}",
                lambda: list(
                    storage.Client(project=settings.project).list_blobs(
                        bucket, max_results=1, timeout=TIMEOUT_S
                    )
                ),
            )
        )
    failures: list[Failed] = []
    done: list[str] = []
    for code, what, call in targets:
        try:
            done.append(_reachable(code, what, call))
        except Failed as exc:
            failures.append(exc)
    if failures:
        raise Failed(failures[0].code, "; ".join(str(f) for f in failures))
    if not targets:
        return NotChecked(
            "not configured", "JOBS_SUBSCRIPTION, RESULTS_TOPIC and OUTPUT_URI are unset"
        )
    needed = {
        "JOBS_SUBSCRIPTION": settings.jobs_subscription or settings.manifest_uri,  # queue mode
        "RESULTS_TOPIC": settings.results_topic,
        "OUTPUT_URI": settings.output_uri,
    }
    unset = [name for name, value in needed.items() if not value]
    return done + ([f"not configured: {', '.join(unset)}"] if unset else [])


def main(args: argparse.Namespace, settings: Settings) -> int:
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    unknown = skip - set(CHECKS)
    if unknown:
        raise ConfigError(f"--skip {','.join(sorted(unknown))}: choose from {', '.join(CHECKS)}")
    steps: list[tuple[str, str, Callable[[Settings, argparse.Namespace], object]]] = [
        ("comfyui_dir", "comfyui", check_comfyui_dir),
        ("gpu", "gpu", check_gpu),
        ("comfyui_import", "comfyui", check_comfyui_import),
        ("models", "models", check_models),
        ("services", "services", check_services),
    ]
    first_failure = CheckCode.OK
    for name, group, step in steps:
        if group in skip:
            continue
        started = time.perf_counter()
        line: dict[str, Any] = {"check": name}
        try:
            detail = step(settings, args)
        except Failed as exc:
            line |= {
                "state": "failed",
                "code": int(exc.code),
                "cause": exc.code.name.lower(),
                "detail": str(exc),
            }
            first_failure = first_failure or exc.code
        else:
            if isinstance(detail, NotChecked):
                line |= {"state": detail.state, "detail": detail.detail}
            else:
                line |= {"state": "ok", "detail": detail}
        line["seconds"] = round(time.perf_counter() - started, 3)
        print(json.dumps(line), flush=True)
        if name == "comfyui_dir" and line["state"] == "failed":
            skip.add("comfyui")  # nothing to import
    return first_failure
