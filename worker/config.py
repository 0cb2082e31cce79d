"""Settings: the only reader of the environment.

``Settings.from_env(os.environ)`` runs once, in the CLI. Every problem found is reported at once in
one ``ConfigError`` whose lines name the variable and say what is allowed. Each section is a frozen
dataclass whose fields are declared once, with ``worker.configspec``: the variable, its kind,
default, bounds, when it is required and its help. The same declarations drive parsing,
``require`` and the reference docs/configuration.md (``python -m worker.configdoc`` writes it).
Checks across fields come after the per-field parse, in ``from_env``.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from worker import configspec
from worker.configspec import (
    choice,
    endpoint,
    flag,
    gs_uri,
    gs_uri_or_path,
    integer,
    items,
    number,
    path,
    resource,
    run_job,
    scaled,
    text,
    words,
)
from worker.errors import ConfigError

if TYPE_CHECKING:
    from worker.obs.cost import CostMeter, Prices, Shape

MiB = 1024 * 1024
GiB = 1024 * MiB
PUBSUB_MAX_MESSAGE_BYTES = 10_000_000  # Pub/Sub's own maximum message size
# An https model host: ``host``, ``host:port`` or ``*.domain`` (any subdomain), lower-case.
_MODEL_HOST = re.compile(r"(\*\.)?[a-z0-9]([a-z0-9-]{0,62}\.)*[a-z0-9-]{1,63}(:[0-9]{1,5})?")
DEFAULT_SERVICE = "comfy-worker"  # how traces and profiles are labelled outside Cloud Run


def _is_cidr(text: str) -> bool:
    try:
        ipaddress.ip_network(text, strict=False)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class Limits:
    """What a job may ask for. A job over a limit fails as ``invalid_job`` (or, for its
    pixels, ``invalid_workflow`` / ``input_error``) before anything runs."""

    title: ClassVar[str] = "Limits"

    max_message_bytes: int = integer(
        "MAX_MESSAGE_BYTES",
        PUBSUB_MAX_MESSAGE_BYTES,
        lo=1024,
        hi=PUBSUB_MAX_MESSAGE_BYTES,
        help="the job message's size (Pub/Sub's own maximum); also an HTTP job body's",
    )
    max_inputs: int = integer("MAX_INPUTS", 32, hi=10_000, help="input files per job")
    max_input_bytes: int = integer(
        "MAX_INPUT_BYTES", 100 * MiB, lo=1, help="one input file (the task's disk is RAM)"
    )
    max_total_input_bytes: int = integer(
        "MAX_TOTAL_INPUT_BYTES", 512 * MiB, lo=1, help="all of a job's inputs together"
    )
    max_metadata_bytes: int = integer(
        "MAX_METADATA_BYTES", 16 * 1024, hi=256 * 1024, help="the `metadata` object, as JSON"
    )
    max_prefix_chars: int = 512  # a job's output prefix (not a setting: job references use it)
    allowed_input_buckets: tuple[str, ...] = items(
        "ALLOWED_INPUT_BUCKETS",
        default_doc="the output bucket",
        help="buckets `gs://` inputs may come from; `*` for any",
    )
    max_pixels_per_job: int = integer(
        "MAX_PIXELS_PER_JOB",
        2**28,
        lo=1,
        help="the most pixels (width x height x batch x frames) any one image or latent node "
        "of a job may make (`EmptyImage`, `EmptyLatentImage`, `EmptySD3LatentImage`, video "
        "latents, `ImageScale`, ...), estimated before execution by following the links: "
        "repeats, scales, padding, batching and primitive values count, and so do audio "
        "samples (`invalid_workflow`)",
    )
    max_input_pixels: int = integer(
        "MAX_INPUT_PIXELS",
        89_478_485,
        lo=1,
        help="one decoded input image, all its frames together (PIL's own default, enforced as "
        "an error instead of a warning), checked from the header before execution "
        "(`input_error`); also one staged video stream, all its frames together, and one audio "
        "stream at 3x this in samples, all channels together (the same float32 memory), "
        "probed with PyAV",
    )
    allowed_model_buckets: tuple[str, ...] = items(
        "ALLOWED_MODEL_BUCKETS",
        default_doc="none",
        help="buckets `gs://` models a job brings may come from; `*` for any",
    )
    allowed_model_hosts: tuple[str, ...] = items(
        "ALLOWED_MODEL_HOSTS",
        lower=True,
        valid=_MODEL_HOST.fullmatch,
        rule="is not a host name, host:port or *.domain (e.g. huggingface.co,*.hf.co)",
        default_doc="none",
        help="hosts `https://` models may come from, and their downloads redirect to: "
        "`huggingface.co` (port 443), `host:port`, `*.hf.co` (any subdomain)",
    )
    max_models: int = integer("MAX_MODELS", 16, hi=256, help="entries of a job's `models`")
    max_model_bytes: int = integer("MAX_MODEL_BYTES", 8 * GiB, lo=1, help="one model a job brings")
    max_total_model_bytes: int = integer(
        "MAX_TOTAL_MODEL_BYTES", 12 * GiB, lo=1, help="all the models a job brings together"
    )


@dataclass(frozen=True)
class ModelSettings:
    """Models that jobs bring (``models`` in the job message): their cache and their fetching.

    The cache lives in ``MODEL_CACHE_DIR`` with the manifest's models and counts them."""

    title: ClassVar[str] = "Models jobs bring"

    cache_max_bytes: int = scaled(
        "MODEL_CACHE_MAX_GB",
        12.0,
        scale=1e9,
        lo=0.0,
        above=0.0,
        hi=1e6,
        help="the model cache's size in GB (10^9 bytes, fractions allowed): every file in "
        "`MODEL_CACHE_DIR`, the manifest's included; least recently used job models are "
        "evicted, never those of the running or the prefetched job",
    )
    host_tokens: Path | None = path(
        "MODEL_HOST_TOKENS",
        help='a JSON file `{"huggingface.co": "hf_..."}` (mount it from Secret Manager): '
        "`Authorization: Bearer` for that host only, never logged, echoed or sent along a "
        "redirect",
    )
    allowed_networks: tuple[str, ...] = items(
        "MODEL_FETCH_ALLOWED_NETWORKS",
        valid=_is_cidr,
        rule="is not a CIDR such as 10.8.0.0/16",
        help="CIDRs exempted from the refusal of private, loopback and link-local addresses "
        "(an internal mirror); the metadata server stays refused",
    )
    fetch_timeout_s: float = number(
        "MODEL_FETCH_TIMEOUT_S",
        900.0,
        lo=1.0,
        hi=86_400.0,
        help="one model's whole download (connects time out after 10 s, a read that waits "
        "30 s fails)",
    )


@dataclass(frozen=True)
class Timeouts:
    """How long things may take, in seconds."""

    title: ClassVar[str] = "Timeouts"

    job_s: float = number(
        "JOB_TIMEOUT_S",
        1800.0,
        lo=1.0,
        hi=86_400.0,
        help="one job's execution; past it the job is interrupted and fails with `timeout` "
        "(the lease is never extended past it)",
    )
    idle_exit_s: float = number(
        "IDLE_EXIT_S",
        60.0,
        help="exit 0 after this long with nothing to do (counted from ready)",
    )
    task_s: float = number(
        "TASK_TIMEOUT_S",
        3600.0,
        lo=10.0,
        hi=7 * 86_400.0,
        help="the Cloud Run task timeout (keep equal to `jobs.yaml`'s; GPU tasks: at most 1 h)",
    )
    stop_margin_s: float = number(
        "STOP_MARGIN_S",
        30.0,
        help="stop (like a SIGTERM) this long before `TASK_TIMEOUT_S`; must be below it",
    )
    shutdown_grace_s: float = number(
        "SHUTDOWN_GRACE_S",
        8.0,
        lo=1.0,
        hi=60.0,
        help="SIGTERM -> exit; Cloud Run sends SIGKILL 10 s after SIGTERM",
    )
    lease_extension_s: float = number(
        "LEASE_EXTENSION_S",
        60.0,
        lo=10.0,
        hi=600.0,
        help="each ack-deadline extension; also the redelivery delay",
    )
    pull_s: float = number(
        "PULL_TIMEOUT_S",
        3.0,
        lo=1.5,
        hi=60.0,
        help="how long one pull waits on an empty subscription",
    )
    service_retry_s: float = number(
        "SERVICE_RETRY_S",
        60.0,
        lo=1.0,
        hi=3600.0,
        help="how long Pub/Sub and GCS calls are retried before giving up",
    )
    cancel_check_s: float = number(
        "CANCEL_CHECK_S",
        2.0,
        hi=600.0,
        help="how often a running job's cancel marker is looked for (one GCS read each); `0` "
        "turns the watch off (markers are still honoured before a job starts)",
    )


@dataclass(frozen=True)
class Identity:
    """Who this process is, as Cloud Run tells it (all optional outside Cloud Run). A Cloud Run
    service (HTTP mode) sets ``K_SERVICE`` / ``K_REVISION`` instead of the job's variables."""

    title: ClassVar[str] = "Identity (set by Cloud Run)"

    job: str | None = text(
        "CLOUD_RUN_JOB", also=("K_SERVICE",), help="the job (or service): logs and results"
    )
    execution: str | None = text(
        "CLOUD_RUN_EXECUTION",
        also=("K_REVISION",),
        help="the execution (or revision): logs and results",
    )
    task_index: int = integer(
        "CLOUD_RUN_TASK_INDEX",
        0,
        help="this task's index: logs, results and the manifest share; below the task count",
    )
    task_count: int = integer(
        "CLOUD_RUN_TASK_COUNT", 1, lo=1, help="the execution's tasks: the manifest share"
    )
    task_attempt: int = integer("CLOUD_RUN_TASK_ATTEMPT", 0, help="this task's retry number")


@dataclass(frozen=True)
class ComfySettings:
    """The embedded ComfyUI executor (``worker.executor.comfy``) and its models
    (``worker.models``). docs/executor.md describes how they are used; the defaults suit a Cloud
    Run L4 task."""

    title: ClassVar[str] = "The embedded ComfyUI executor"

    comfyui_dir: Path | None = path(
        "COMFYUI_DIR",
        required="`run` and `check`",
        help="the ComfyUI checkout to import (`/opt/comfyui` in the image; "
        "`scripts/install-comfyui` makes one)",
    )
    device: str = choice(
        "COMFYUI_DEVICE",
        "auto",
        ("auto", "cuda", "cpu"),
        help="`auto`: CUDA when an NVIDIA device is visible, else CPU; `cuda`: require it; `cpu`",
    )
    comfyui_args: tuple[str, ...] = words(
        "COMFYUI_ARGS", help="extra ComfyUI command-line flags, e.g. `--reserve-vram 1`"
    )
    models_dir: Path | None = path(
        "MODELS_DIR",
        help="a folder laid out like ComfyUI's `models/`: local, or a GCS volume mount",
    )
    extra_model_paths: Path | None = path(
        "EXTRA_MODEL_PATHS", help="an `extra_model_paths.yaml` in ComfyUI's format"
    )
    model_manifest: str | None = gs_uri_or_path(
        "MODEL_MANIFEST",
        help="JSON list of `gs://` models with folder, size and checksum, downloaded before "
        "the first job",
    )
    model_cache_dir: Path | None = path(
        "MODEL_CACHE_DIR",
        default_doc="`WORK_DIR/models`",
        help="where manifest models and the models jobs bring go (the task's disk is RAM): "
        "one cache, of `MODEL_CACHE_MAX_GB`",
    )
    model_download_workers: int = integer(
        "MODEL_DOWNLOAD_WORKERS",
        8,
        lo=1,
        hi=64,
        help="parallel ranged requests per model file (manifest and job models, gs:// and https)",
    )
    model_chunk_mib: int = integer(
        "MODEL_CHUNK_MIB", 32, lo=1, hi=1024, help="the size of each ranged request, in MiB"
    )
    warmup_workflow: str | None = gs_uri_or_path(
        "WARMUP_WORKFLOW", help="an API-format workflow run once before the first pull"
    )
    png_metadata: bool = flag(
        "PNG_METADATA", False, help="embed the workflow in saved PNGs (ComfyUI's default is on)"
    )
    progress_topic: str | None = resource(
        "PROGRESS_TOPIC",
        "topics",
        help="publish throttled progress events (`status: running`) there",
    )
    progress_interval_s: float = number(
        "PROGRESS_INTERVAL_S",
        1.0,
        hi=3600.0,
        help="at most one progress update per node this often",
    )


@dataclass(frozen=True)
class ProducerSettings:
    """Producers and operations: pipelines, manifests, ``submit``, ``dispatch``, ``status``.
    An ``http://`` API endpoint means a local stand-in, called without credentials (tests)."""

    title: ClassVar[str] = "Producers and operations"

    pipelines_dir: Path = path(
        "PIPELINES_DIR",
        Path(__file__).resolve().parent.parent / "pipelines",
        default_doc="`pipelines/` of the checkout",
        help="the pipeline files",
    )
    region: str | None = text("REGION", help="the region of `RUN_JOB`")
    run_job: str | None = run_job(
        "RUN_JOB",
        help="the Cloud Run job `dispatch` and `submit --execute` start "
        "(`projects/P/locations/R/jobs/J`, or `J` with `GOOGLE_CLOUD_PROJECT` and `REGION`)",
    )
    run_api_endpoint: str | None = endpoint(
        "RUN_API_ENDPOINT", default_doc="Google's", help="the Cloud Run Admin API endpoint"
    )
    monitoring_api_endpoint: str | None = endpoint(
        "MONITORING_API_ENDPOINT", default_doc="Google's", help="the Cloud Monitoring endpoint"
    )
    dispatch_max_tasks: int = integer(
        "DISPATCH_MAX_TASKS",
        10,
        lo=1,
        hi=10_000,
        help="most tasks held by unfinished executions of the job together",
    )
    dispatch_jobs_per_task: int = integer(
        "DISPATCH_JOBS_PER_TASK", 20, lo=1, hi=1_000_000, help="backlog one task is sized for"
    )
    dispatch_max_executions: int = integer(
        "DISPATCH_MAX_EXECUTIONS", 5, lo=1, hi=1000, help="most unfinished executions at once"
    )
    dispatch_daily_task_budget: int = integer(
        "DISPATCH_DAILY_TASK_BUDGET",
        0,
        help="most tasks started in the trailing 24 h; `0`: no cap",
    )
    dispatch_lock_uri: str | None = gs_uri(
        "DISPATCH_LOCK_URI",
        default_doc="`<OUTPUT_URI>/_dispatch`",
        help="the dispatch lock objects",
    )
    dispatch_lock_s: float = number(
        "DISPATCH_LOCK_S",
        30.0,
        lo=5.0,
        hi=3600.0,
        help="at most one dispatch decision per this many seconds",
    )
    submit_input_uri: str | None = gs_uri(
        "SUBMIT_INPUT_URI",
        default_doc="`<OUTPUT_URI>/_inputs`",
        help="where `submit` uploads local input files (under their SHA-256)",
    )
    manifest_max_bytes: int = integer(
        "MANIFEST_MAX_BYTES", 1024 * MiB, lo=1, help="the largest manifest a task reads"
    )
    manifest_max_attempts: int = integer(
        "MANIFEST_MAX_ATTEMPTS",
        3,
        lo=1,
        hi=100,
        help="tries of one manifest line within a task (transient faults) before the task gives up",
    )


@dataclass(frozen=True)
class CostSettings:
    """Prices and the task's shape for the ``gpu_seconds`` / ``cost_usd`` fields of each result
    (``worker.obs.cost``). Defaults: Cloud Run list prices, tier 1, L4 without zonal redundancy,
    read in ``worker.obs.cost.PRICE_DATE``; ``TASK_VCPUS`` / ``TASK_MEMORY_GIB`` must match
    jobs.yaml."""

    title: ClassVar[str] = "Cost"

    gpu_usd_s: float = number(
        "PRICE_GPU_USD_S",
        0.0001867,
        hi=1.0,
        help="an L4 GPU-second (no zonal redundancy); `0.0002909` with zonal redundancy",
    )
    vcpu_usd_s: float = number(
        "PRICE_VCPU_USD_S", 0.000018, hi=1.0, help="a vCPU-second (instance-based billing)"
    )
    gib_usd_s: float = number(
        "PRICE_GIB_USD_S", 0.000002, hi=1.0, help="a GiB-second of memory (instance-based billing)"
    )
    vcpus: float = number(
        "TASK_VCPUS", 8.0, lo=1.0, hi=256.0, help="the task's vCPUs, as jobs.yaml sets them"
    )
    memory_gib: float = number(
        "TASK_MEMORY_GIB", 32.0, lo=0.5, hi=1024.0, help="the task's memory, as jobs.yaml sets it"
    )

    @property
    def prices(self) -> Prices:
        from worker.obs.cost import Prices

        return Prices(self.gpu_usd_s, self.vcpu_usd_s, self.gib_usd_s)

    @property
    def shape(self) -> Shape:
        from worker.obs.cost import Shape

        return Shape(self.vcpus, self.memory_gib)

    def meter(self, started_at: float) -> CostMeter:
        """The share-out meter of one task that started at ``started_at`` (monotonic)."""
        from worker.obs.cost import meter_for

        return meter_for(self.prices, self.shape, started_at)


@dataclass(frozen=True)
class ObservabilitySettings:
    """Optional traces (OpenTelemetry -> Cloud Trace) and Cloud Profiler; both off by default."""

    title: ClassVar[str] = "Observability"

    tracing: bool = flag(
        "TRACING",
        False,
        help="trace each job's phases (OpenTelemetry), continuing the message's `traceparent` "
        "attribute",
    )
    tracing_exporter: str = choice(
        "TRACING_EXPORTER",
        "cloud",
        ("cloud", "console"),
        help="`cloud` (Cloud Trace; needs `opentelemetry-exporter-gcp-trace`) or `console` "
        "(JSON spans on stderr)",
    )
    profiler: bool = flag(
        "PROFILER",
        False,
        help="start the Cloud Profiler agent (CPU profiles; needs `google-cloud-profiler`)",
    )
    service: str | None = text(
        "SERVICE_NAME",
        pattern=r"[a-z0-9]([-a-z0-9_.]{0,253}[a-z0-9])?",
        rule="must be lower-case letters, digits, - _ . (Cloud Profiler's rule)",
        default_doc=f"`CLOUD_RUN_JOB`, else `{DEFAULT_SERVICE}`",
        help="how traces and profiles are labelled",
    )
    service_version: str = text(
        "SERVICE_VERSION", "dev", help="the version traces and profiles carry (the image tag)"
    )

    def service_name(self, identity: Identity) -> str:
        """``SERVICE_NAME``, else the job's (or service's) name, else a fixed one."""
        return self.service or identity.job or DEFAULT_SERVICE


@dataclass(frozen=True)
class HttpSettings:
    """HTTP mode (``main.py``, ``worker.http``): the Cloud Run service and its Runpod-style API.

    API keys are optional: without any, access is Cloud Run IAM's alone (the service is private
    by default). Keys are never logged."""

    title: ClassVar[str] = "HTTP mode"

    execute: bool = flag(
        "HTTP_EXECUTE",
        True,
        help="run jobs on this instance (`/predict`, `runsync`); `false`: a gateway (queue, "
        "status, cancel; no GPU needed)",
    )
    api_keys_file: Path | None = path(
        "API_KEYS_FILE",
        help="a file of API keys, one per line (blank lines and `#` comments ignored): where "
        "Cloud Run mounts a Secret Manager secret",
    )
    api_keys: tuple[str, ...] = items(
        "API_KEYS", help="API keys, comma-separated (a secret exposed as an env var)"
    )
    inline_max_bytes: int = integer(
        "INLINE_MAX_BYTES",
        8 * MiB,
        hi=24 * MiB,
        help="outputs returned inline as base64, together (the response must fit Cloud Run's "
        "32 MiB)",
    )
    runsync_wait_s: float = number(
        "RUNSYNC_WAIT_S",
        60.0,
        hi=800.0,
        help="a gateway's `runsync`: how long it waits for a queued job's result before "
        "answering `IN_QUEUE`",
    )
    purge_queue: bool = flag(
        "PURGE_QUEUE_ENABLED",
        False,
        help="allow `/v2/{endpoint}/purge-queue` (seeks the job subscription)",
    )


@dataclass(frozen=True)
class Settings:
    """Resource names may be full (``projects/P/topics/T``) or short with
    ``GOOGLE_CLOUD_PROJECT``."""

    title: ClassVar[str] = "The worker"

    project: str | None = text(
        "GOOGLE_CLOUD_PROJECT",
        required="`submit --wait`",
        help="the project of short resource names",
    )
    jobs_subscription: str | None = resource(
        "JOBS_SUBSCRIPTION",
        "subscriptions",
        required="`run` in queue mode, `dispatch`",
        help="the job subscription",
    )
    results_topic: str | None = resource(
        "RESULTS_TOPIC",
        "topics",
        required="`run`, `submit --wait`, the HTTP service when it executes",
        help="where completion events go",
    )
    jobs_topic: str | None = resource(
        "JOBS_TOPIC", "topics", required="`submit`", help="the jobs topic (`submit`, HTTP `run`)"
    )
    output_uri: str | None = gs_uri(
        "OUTPUT_URI",
        required="`run`, `status`, `cancel`, the HTTP service",
        help="`gs://bucket[/prefix]` under which job folders are written",
    )
    manifest_uri: str | None = gs_uri(
        "MANIFEST_URI",
        help="run a JSONL manifest share instead of the subscription (same as `run --manifest`)",
    )
    max_jobs: int = integer("MAX_JOBS", 0, help="exit 0 after this many jobs; `0`: no limit")
    max_consecutive_transient: int = integer(
        "MAX_CONSECUTIVE_TRANSIENT",
        3,
        lo=1,
        help="transient job failures in a row before exiting 69",
    )
    max_crashed_attempts: int = integer(
        "MAX_CRASHED_ATTEMPTS",
        2,
        hi=100,
        help="earlier attempts that died with their process before a job fails as "
        "`worker_crashed`; `0` turns crash accounting off (attempt records are then written "
        "in the background: no write on the GPU's path)",
    )
    max_delivery_attempts: int = integer(
        "MAX_DELIVERY_ATTEMPTS",
        5,
        lo=5,
        hi=100,
        help="the job subscription's maximum delivery attempts (keep equal to `infra/`'s "
        "`max_delivery_attempts`): the last one writes `retries_exhausted` instead of nacking "
        "a transient failure into the dead-letter topic",
    )
    work_dir: Path = path(
        "WORK_DIR",
        Path("/tmp/worker"),
        help="working directories: each process takes its own slot `WORK_DIR/worker-<n>` "
        "under an exclusive `flock` (ComfyUI's folders and per-job inputs/outputs, removed "
        "after upload; a dead owner's slot is emptied and reused), so several workers on one "
        "host never share them; `WORK_DIR/models` (the default model cache) stays shared",
    )
    executor: str = text(
        "EXECUTOR",
        "worker.executor.comfy:build_executor",
        help="`module:function` returning the `Executor`: the embedded ComfyUI one unless you "
        "plug in another runtime",
    )
    executor_process: bool = flag(
        "EXECUTOR_PROCESS",
        True,
        help="run the executor in a child process of the worker's (`worker.executor.process`): "
        "the worker's own Python (pulling, staging, uploading, leases) then never holds the GIL "
        "that ComfyUI's Python waits for (docs/performance.md); a crash of the child fails its "
        "job's attempt as a crash of the worker would. `false` runs it in the worker's process",
    )
    log_level: str = choice(
        "LOG_LEVEL", "INFO", ("DEBUG", "INFO", "WARNING", "ERROR"), help="the log level"
    )
    limits: Limits = field(default_factory=Limits)
    timeouts: Timeouts = field(default_factory=Timeouts)
    identity: Identity = field(default_factory=Identity)
    comfy: ComfySettings = field(default_factory=ComfySettings)
    models: ModelSettings = field(default_factory=ModelSettings)
    producer: ProducerSettings = field(default_factory=ProducerSettings)
    cost: CostSettings = field(default_factory=CostSettings)
    observability: ObservabilitySettings = field(default_factory=ObservabilitySettings)
    http: HttpSettings = field(default_factory=HttpSettings)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        problems: list[str] = []
        settings = configspec.read(cls, env, problems)
        t = settings.timeouts
        if t.stop_margin_s >= t.task_s:
            problems.append(f"STOP_MARGIN_S={t.stop_margin_s} must be below TASK_TIMEOUT_S")
        if settings.identity.task_index >= settings.identity.task_count:
            problems.append("CLOUD_RUN_TASK_INDEX must be below CLOUD_RUN_TASK_COUNT")
        if problems:
            raise ConfigError("invalid configuration:\n  " + "\n  ".join(problems))
        return settings

    def require(self, *names: str) -> None:
        """Fail with one message naming every required variable that is unset."""
        missing = [name for name in names if self.value_of(name) is None]
        if missing:
            raise ConfigError("missing required setting(s): " + ", ".join(missing))

    def value_of(self, name: str) -> Any:
        """The value read from the variable ``name`` (a KeyError if no field declares it)."""
        for attrs, setting in configspec.walk(type(self)):
            if name in setting.names:
                value: Any = self
                for attr in attrs:
                    value = getattr(value, attr)
                return value
        raise KeyError(f"{name} is not a declared setting")

    def in_slot(self, slot_dir: Path) -> Settings:
        """These settings for a process that owns ``slot_dir`` of ``WORK_DIR``
        (``worker.loop.workdir``): its jobs and ComfyUI's folders go there, while the model cache
        stays shared."""
        comfy = dataclasses.replace(self.comfy, model_cache_dir=self.model_cache_dir)
        return dataclasses.replace(self, work_dir=slot_dir, comfy=comfy)

    @property
    def model_cache_dir(self) -> Path:
        """``MODEL_CACHE_DIR``, else ``WORK_DIR/models``."""
        return self.comfy.model_cache_dir or self.work_dir / "models"

    @property
    def submit_input_uri(self) -> str | None:
        """``SUBMIT_INPUT_URI``, else ``<OUTPUT_URI>/_inputs`` (None without either)."""
        return self.producer.submit_input_uri or self._under_output("_inputs")

    @property
    def dispatch_lock_uri(self) -> str | None:
        """``DISPATCH_LOCK_URI``, else ``<OUTPUT_URI>/_dispatch`` (None without either)."""
        return self.producer.dispatch_lock_uri or self._under_output("_dispatch")

    def _under_output(self, name: str) -> str | None:
        return f"{self.output_uri}/{name}" if self.output_uri else None

    @property
    def output_bucket(self) -> str:
        assert self.output_uri is not None
        return self.output_uri.removeprefix("gs://").split("/", 1)[0]
