"""Settings: the only reader of the environment.

``Settings.from_env(os.environ)`` runs once, in the CLI. Every problem found is reported at once in
one ``ConfigError`` whose lines name the variable and say what is allowed. Each section is a frozen
dataclass; the README's table of variables mirrors this file.
"""

from __future__ import annotations

import dataclasses
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from worker.errors import ConfigError

if TYPE_CHECKING:
    from worker.obs.cost import CostMeter

MiB = 1024 * 1024
GiB = 1024 * MiB
# An https model host: ``host``, ``host:port`` or ``*.domain`` (any subdomain), lower-case.
_MODEL_HOST = re.compile(r"(\*\.)?[a-z0-9]([a-z0-9-]{0,62}\.)*[a-z0-9-]{1,63}(:[0-9]{1,5})?")
N = TypeVar("N", int, float)


class _Reader:
    """Reads typed values from a mapping and collects every problem instead of stopping early."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env
        self.problems: list[str] = []

    def text(self, name: str, default: str | None = None) -> str | None:
        value = self.env.get(name, "").strip()
        return value or default

    def integer(
        self,
        name: str,
        default: int,
        lo: int = 0,
        hi: int | None = None,
    ) -> int:
        raw = self.env.get(name, "").strip()
        if not raw:
            return default
        try:
            value = int(raw)
        except ValueError:
            self.problems.append(f"{name}={raw!r} is not a whole number")
            return default
        return self._bounded(name, value, lo, hi)

    def number(
        self,
        name: str,
        default: float,
        lo: float = 0.0,
        hi: float | None = None,
    ) -> float:
        raw = self.env.get(name, "").strip()
        if not raw:
            return default
        try:
            value = float(raw)
        except ValueError:
            self.problems.append(f"{name}={raw!r} is not a number")
            return default
        return self._bounded(name, value, lo, hi)

    def flag(self, name: str, default: bool) -> bool:
        raw = self.env.get(name, "").strip().lower()
        if not raw:
            return default
        if raw in ("1", "true", "yes", "on"):
            return True
        if raw in ("0", "false", "no", "off"):
            return False
        self.problems.append(f"{name}={raw!r} must be one of true/false/1/0/yes/no/on/off")
        return default

    def items(self, name: str, default: tuple[str, ...] = ()) -> tuple[str, ...]:
        raw = self.env.get(name, "").strip()
        if not raw:
            return default
        return tuple(part.strip() for part in raw.split(",") if part.strip())

    def gs_uri(self, name: str, default: str | None = None) -> str | None:
        value = self.text(name, default)
        if value is None:
            return None
        if not re.fullmatch(r"gs://[a-z0-9][a-z0-9._-]{1,221}[a-z0-9](/[^\s]*)?", value):
            self.problems.append(f"{name}={value!r} must look like gs://bucket[/path]")
            return None
        return value.rstrip("/")

    def _bounded(self, name: str, value: N, lo: N, hi: N | None) -> N:
        if value < lo or (hi is not None and value > hi):
            bound = f"between {lo} and {hi}" if hi is not None else f"at least {lo}"
            self.problems.append(f"{name}={value} must be {bound}")
        return value


def _resource(r: _Reader, name: str, kind: str, project: str | None) -> str | None:
    """Accept ``projects/P/<kind>/NAME`` or a bare ``NAME`` resolved with GOOGLE_CLOUD_PROJECT."""
    value = r.text(name)
    if value is None:
        return None
    if value.startswith("projects/"):
        if not re.fullmatch(rf"projects/[^/]+/{kind}/[^/]+", value):
            r.problems.append(f"{name}={value!r} must be projects/PROJECT/{kind}/NAME or NAME")
        return value
    if "/" in value:
        r.problems.append(f"{name}={value!r} must be projects/PROJECT/{kind}/NAME or NAME")
        return None
    if project is None:
        r.problems.append(f"{name}={value!r} is a short name: set GOOGLE_CLOUD_PROJECT too")
        return None
    return f"projects/{project}/{kind}/{value}"


@dataclass(frozen=True)
class Limits:
    """What a job may ask for. Each has a number; the README lists them."""

    max_message_bytes: int = 10_000_000  # Pub/Sub's own maximum message size
    max_inputs: int = 32
    max_input_bytes: int = 100 * MiB  # one input file (the task's disk is RAM)
    max_total_input_bytes: int = 512 * MiB
    max_metadata_bytes: int = 16 * 1024
    max_prefix_chars: int = 512
    allowed_input_buckets: tuple[str, ...] = ()  # empty: only the output bucket; "*": any
    max_pixels_per_job: int = 2**28  # width x height x batch x frames of one image/latent node
    max_input_pixels: int = 89_478_485  # one decoded input image (PIL's own default, enforced)
    allowed_model_buckets: tuple[str, ...] = ()  # gs:// models may come from; empty: none; "*"
    allowed_model_hosts: tuple[str, ...] = ()  # https:// model hosts; empty: none
    max_models: int = 16  # entries of a job's ``models``
    max_model_bytes: int = 8 * GiB  # one model a job brings
    max_total_model_bytes: int = 12 * GiB  # all of them together

    @classmethod
    def read(cls, r: _Reader) -> Limits:
        return cls(
            max_message_bytes=r.integer(
                "MAX_MESSAGE_BYTES", cls.max_message_bytes, 1024, 10_000_000
            ),
            max_inputs=r.integer("MAX_INPUTS", cls.max_inputs, 0, 10_000),
            max_input_bytes=r.integer("MAX_INPUT_BYTES", cls.max_input_bytes, 1),
            max_total_input_bytes=r.integer("MAX_TOTAL_INPUT_BYTES", cls.max_total_input_bytes, 1),
            max_metadata_bytes=r.integer(
                "MAX_METADATA_BYTES", cls.max_metadata_bytes, 0, 256 * 1024
            ),
            allowed_input_buckets=r.items("ALLOWED_INPUT_BUCKETS"),
            max_pixels_per_job=r.integer("MAX_PIXELS_PER_JOB", cls.max_pixels_per_job, 1),
            max_input_pixels=r.integer("MAX_INPUT_PIXELS", cls.max_input_pixels, 1),
            allowed_model_buckets=r.items("ALLOWED_MODEL_BUCKETS"),
            allowed_model_hosts=_model_hosts(r, "ALLOWED_MODEL_HOSTS"),
            max_models=r.integer("MAX_MODELS", cls.max_models, 0, 256),
            max_model_bytes=r.integer("MAX_MODEL_BYTES", cls.max_model_bytes, 1),
            max_total_model_bytes=r.integer("MAX_TOTAL_MODEL_BYTES", cls.max_total_model_bytes, 1),
        )


def _model_hosts(r: _Reader, name: str) -> tuple[str, ...]:
    hosts = tuple(h.lower() for h in r.items(name))
    for host in hosts:
        if not _MODEL_HOST.fullmatch(host):
            r.problems.append(
                f"{name}: {host!r} is not a host name, host:port or *.domain "
                "(e.g. huggingface.co,*.hf.co)"
            )
    return hosts


@dataclass(frozen=True)
class ModelSettings:
    """Models that jobs bring (``models`` in the job message): their cache and their fetching.

    The cache lives in ``ComfySettings.model_cache_dir`` with the manifest's models and counts
    them; ``allowed_networks`` exempts CIDRs (an internal mirror) from the refusal of private,
    loopback and link-local addresses; the metadata server is refused whatever it says.
    """

    cache_max_bytes: int = 12_000_000_000  # MODEL_CACHE_MAX_GB, in bytes
    host_tokens: Path | None = None  # a JSON file {host: token} (a mounted secret)
    allowed_networks: tuple[str, ...] = ()
    fetch_timeout_s: float = 900.0  # one model's whole download

    @classmethod
    def read(cls, r: _Reader) -> ModelSettings:
        import ipaddress

        networks = r.items("MODEL_FETCH_ALLOWED_NETWORKS")
        for net in networks:
            try:
                ipaddress.ip_network(net, strict=False)
            except ValueError:
                r.problems.append(
                    f"MODEL_FETCH_ALLOWED_NETWORKS: {net!r} is not a CIDR such as 10.8.0.0/16"
                )
        gb = r.number("MODEL_CACHE_MAX_GB", cls.cache_max_bytes / 1e9, 0.0, 1e6)
        if gb <= 0:
            r.problems.append(f"MODEL_CACHE_MAX_GB={gb} must be above 0 (fractions allowed)")
        tokens = r.text("MODEL_HOST_TOKENS")
        return cls(
            cache_max_bytes=int(gb * 1e9),
            host_tokens=Path(tokens) if tokens else None,
            allowed_networks=networks,
            fetch_timeout_s=r.number("MODEL_FETCH_TIMEOUT_S", cls.fetch_timeout_s, 1.0, 86_400.0),
        )


@dataclass(frozen=True)
class Timeouts:
    """How long things may take, in seconds."""

    job_s: float = 1800.0  # one job's execution; the lease is never extended past it
    idle_exit_s: float = 60.0  # exit 0 after this long with nothing to do
    task_s: float = 3600.0  # the Cloud Run task timeout (GPU tasks: at most 1 h)
    stop_margin_s: float = 30.0  # stop this long before task_s, like a SIGTERM
    shutdown_grace_s: float = 8.0  # SIGTERM -> exit; Cloud Run sends SIGKILL after 10 s
    lease_extension_s: float = 60.0  # each ack-deadline extension; also the redelivery delay
    pull_s: float = 3.0  # one synchronous pull's wait when the subscription is empty
    service_retry_s: float = 60.0  # retry Pub/Sub and GCS calls this long before giving up
    cancel_check_s: float = 2.0  # a running job's cancel marker is looked for this often; 0: off

    @classmethod
    def read(cls, r: _Reader) -> Timeouts:
        return cls(
            job_s=r.number("JOB_TIMEOUT_S", cls.job_s, 1.0, 86_400.0),
            idle_exit_s=r.number("IDLE_EXIT_S", cls.idle_exit_s, 0.0),
            task_s=r.number("TASK_TIMEOUT_S", cls.task_s, 10.0, 7 * 86_400.0),
            stop_margin_s=r.number("STOP_MARGIN_S", cls.stop_margin_s, 0.0),
            shutdown_grace_s=r.number("SHUTDOWN_GRACE_S", cls.shutdown_grace_s, 1.0, 60.0),
            lease_extension_s=r.number("LEASE_EXTENSION_S", cls.lease_extension_s, 10.0, 600.0),
            pull_s=r.number("PULL_TIMEOUT_S", cls.pull_s, 1.5, 60.0),
            service_retry_s=r.number("SERVICE_RETRY_S", cls.service_retry_s, 1.0, 3600.0),
            cancel_check_s=r.number("CANCEL_CHECK_S", cls.cancel_check_s, 0.0, 600.0),
        )


@dataclass(frozen=True)
class Identity:
    """Who this process is, as Cloud Run tells it (all optional outside Cloud Run)."""

    job: str | None = None
    execution: str | None = None
    task_index: int = 0
    task_count: int = 1
    task_attempt: int = 0

    @classmethod
    def read(cls, r: _Reader) -> Identity:
        return cls(
            # A Cloud Run service (HTTP mode) sets K_SERVICE / K_REVISION instead.
            job=r.text("CLOUD_RUN_JOB") or r.text("K_SERVICE"),
            execution=r.text("CLOUD_RUN_EXECUTION") or r.text("K_REVISION"),
            task_index=r.integer("CLOUD_RUN_TASK_INDEX", 0, 0),
            task_count=r.integer("CLOUD_RUN_TASK_COUNT", 1, 1),
            task_attempt=r.integer("CLOUD_RUN_TASK_ATTEMPT", 0, 0),
        )


@dataclass(frozen=True)
class ComfySettings:
    """The embedded ComfyUI executor (``worker.executor.comfy``) and its models (``worker.models``).

    docs/executor.md describes each variable; the defaults suit a Cloud Run L4 task.
    """

    comfyui_dir: Path | None = None  # a ComfyUI checkout (scripts/install-comfyui makes one)
    device: str = "auto"  # auto: CUDA when an NVIDIA device is visible, else CPU; or cuda / cpu
    comfyui_args: tuple[str, ...] = ()  # extra ComfyUI command-line flags, e.g. --reserve-vram 1
    models_dir: Path | None = None  # a folder laid out like ComfyUI's models/ (local or mounted)
    extra_model_paths: Path | None = None  # an extra_model_paths.yaml in ComfyUI's format
    model_manifest: str | None = None  # JSON list of gs:// models to fetch (path or gs:// URI)
    model_cache_dir: Path | None = None  # where manifest models go; default WORK_DIR/models
    model_download_workers: int = 8  # parallel ranged requests per model file
    model_chunk_mib: int = 32  # the size of each ranged request
    warmup_workflow: str | None = None  # API-format workflow run once in start() (path or gs://)
    png_metadata: bool = False  # embed the workflow in saved PNGs (ComfyUI's default is on)
    progress_topic: str | None = None
    progress_interval_s: float = 1.0  # at most one progress update per node this often

    @classmethod
    def read(cls, r: _Reader, project: str | None) -> ComfySettings:
        def path(name: str) -> Path | None:
            value = r.text(name)
            return Path(value) if value else None

        device = (r.text("COMFYUI_DEVICE", "auto") or "auto").lower()
        if device not in ("auto", "cuda", "cpu"):
            r.problems.append(f"COMFYUI_DEVICE={device!r} must be auto, cuda or cpu")
        try:
            comfyui_args = tuple(shlex.split(r.text("COMFYUI_ARGS", "") or ""))
        except ValueError as exc:
            r.problems.append(f"COMFYUI_ARGS is not a valid shell-quoted list of flags: {exc}")
            comfyui_args = ()
        manifest = r.text("MODEL_MANIFEST")
        if manifest is not None and manifest.startswith("gs://"):
            manifest = r.gs_uri("MODEL_MANIFEST")
        warmup = r.text("WARMUP_WORKFLOW")
        if warmup is not None and warmup.startswith("gs://"):
            warmup = r.gs_uri("WARMUP_WORKFLOW")
        return cls(
            comfyui_dir=path("COMFYUI_DIR"),
            device=device,
            comfyui_args=comfyui_args,
            models_dir=path("MODELS_DIR"),
            extra_model_paths=path("EXTRA_MODEL_PATHS"),
            model_manifest=manifest,
            model_cache_dir=path("MODEL_CACHE_DIR"),
            model_download_workers=r.integer("MODEL_DOWNLOAD_WORKERS", 8, 1, 64),
            model_chunk_mib=r.integer("MODEL_CHUNK_MIB", 32, 1, 1024),
            warmup_workflow=warmup,
            png_metadata=r.flag("PNG_METADATA", False),
            progress_topic=_resource(r, "PROGRESS_TOPIC", "topics", project),
            progress_interval_s=r.number("PROGRESS_INTERVAL_S", 1.0, 0.0, 3600.0),
        )


@dataclass(frozen=True)
class ProducerSettings:
    """Producers and operations: pipelines, manifests, ``submit``, ``dispatch``, ``status``.

    ``RUN_JOB`` is ``projects/P/locations/R/jobs/J`` or a bare ``J`` resolved with
    ``GOOGLE_CLOUD_PROJECT`` and ``REGION``. An ``http://`` API endpoint means a local stand-in,
    called without credentials (tests).
    """

    pipelines_dir: Path = Path(__file__).resolve().parent.parent / "pipelines"
    region: str | None = None
    run_job: str | None = None  # the Cloud Run job that ``dispatch``/``submit --execute`` start
    run_api_endpoint: str | None = None  # Cloud Run Admin API; default Google's
    monitoring_api_endpoint: str | None = None  # Cloud Monitoring API; default Google's
    dispatch_max_tasks: int = 10  # tasks running at once over all executions of the job
    dispatch_jobs_per_task: int = 20  # backlog one task is sized to take
    dispatch_max_executions: int = 5  # unfinished executions at once
    dispatch_daily_task_budget: int = 0  # tasks started per trailing 24 h; 0: no cap
    dispatch_lock_uri: str | None = None  # default <OUTPUT_URI>/_dispatch
    dispatch_lock_s: float = 30.0  # one dispatch decision per this many seconds
    submit_input_uri: str | None = None  # where submit uploads local inputs; <OUTPUT_URI>/_inputs
    manifest_max_bytes: int = 1024 * MiB
    manifest_max_attempts: int = 3  # attempts of a line in one task before the task gives up

    @classmethod
    def read(cls, r: _Reader) -> ProducerSettings:
        pipelines = r.text("PIPELINES_DIR")
        region = r.text("REGION")
        return cls(
            pipelines_dir=Path(pipelines) if pipelines else cls.pipelines_dir,
            region=region,
            run_job=_run_job(r, r.text("GOOGLE_CLOUD_PROJECT"), region),
            run_api_endpoint=_endpoint(r, "RUN_API_ENDPOINT"),
            monitoring_api_endpoint=_endpoint(r, "MONITORING_API_ENDPOINT"),
            dispatch_max_tasks=r.integer("DISPATCH_MAX_TASKS", cls.dispatch_max_tasks, 1, 10_000),
            dispatch_jobs_per_task=r.integer(
                "DISPATCH_JOBS_PER_TASK", cls.dispatch_jobs_per_task, 1, 1_000_000
            ),
            dispatch_max_executions=r.integer(
                "DISPATCH_MAX_EXECUTIONS", cls.dispatch_max_executions, 1, 1000
            ),
            dispatch_daily_task_budget=r.integer("DISPATCH_DAILY_TASK_BUDGET", 0, 0),
            dispatch_lock_uri=r.gs_uri("DISPATCH_LOCK_URI"),
            dispatch_lock_s=r.number("DISPATCH_LOCK_S", cls.dispatch_lock_s, 5.0, 3600.0),
            submit_input_uri=r.gs_uri("SUBMIT_INPUT_URI"),
            manifest_max_bytes=r.integer("MANIFEST_MAX_BYTES", cls.manifest_max_bytes, 1),
            manifest_max_attempts=r.integer(
                "MANIFEST_MAX_ATTEMPTS", cls.manifest_max_attempts, 1, 100
            ),
        )


@dataclass(frozen=True)
class CostSettings:
    """Prices and the task's shape for the ``gpu_seconds`` / ``cost_usd`` fields of each result
    (``worker.obs.cost``). Defaults: Cloud Run list prices, tier 1, L4 without zonal redundancy,
    read in ``worker.obs.cost.PRICE_DATE``; ``TASK_VCPUS`` / ``TASK_MEMORY_GIB`` must match
    jobs.yaml."""

    gpu_usd_s: float = 0.0001867
    vcpu_usd_s: float = 0.000018
    gib_usd_s: float = 0.000002
    vcpus: float = 8.0
    memory_gib: float = 32.0

    @classmethod
    def read(cls, r: _Reader) -> CostSettings:
        return cls(
            gpu_usd_s=r.number("PRICE_GPU_USD_S", cls.gpu_usd_s, 0.0, 1.0),
            vcpu_usd_s=r.number("PRICE_VCPU_USD_S", cls.vcpu_usd_s, 0.0, 1.0),
            gib_usd_s=r.number("PRICE_GIB_USD_S", cls.gib_usd_s, 0.0, 1.0),
            vcpus=r.number("TASK_VCPUS", cls.vcpus, 1.0, 256.0),
            memory_gib=r.number("TASK_MEMORY_GIB", cls.memory_gib, 0.5, 1024.0),
        )

    def meter(self, started_at: float) -> CostMeter:
        """The share-out meter of one task that started at ``started_at`` (monotonic)."""
        from worker.obs.cost import Prices, Shape, meter_for

        prices = Prices(self.gpu_usd_s, self.vcpu_usd_s, self.gib_usd_s)
        return meter_for(prices, Shape(self.vcpus, self.memory_gib), started_at)


@dataclass(frozen=True)
class ObservabilitySettings:
    """Optional traces (OpenTelemetry -> Cloud Trace) and Cloud Profiler; both off by default."""

    tracing: bool = False
    tracing_exporter: str = "cloud"  # cloud: Cloud Trace; console: JSON spans on stderr
    profiler: bool = False
    service: str | None = None  # default: CLOUD_RUN_JOB, else "comfy-worker"
    service_version: str = "dev"

    @classmethod
    def read(cls, r: _Reader) -> ObservabilitySettings:
        exporter = (r.text("TRACING_EXPORTER", "cloud") or "cloud").lower()
        if exporter not in ("cloud", "console"):
            r.problems.append(f"TRACING_EXPORTER={exporter!r} must be cloud or console")
        service = r.text("SERVICE_NAME")
        if service is not None and not re.fullmatch(
            r"[a-z0-9]([-a-z0-9_.]{0,253}[a-z0-9])?", service
        ):
            r.problems.append(
                f"SERVICE_NAME={service!r} must be lower-case letters, digits, - _ . "
                "(Cloud Profiler's rule)"
            )
        return cls(
            tracing=r.flag("TRACING", False),
            tracing_exporter=exporter,
            profiler=r.flag("PROFILER", False),
            service=service,
            service_version=r.text("SERVICE_VERSION", "dev") or "dev",
        )


def _run_job(r: _Reader, project: str | None, region: str | None) -> str | None:
    value = r.text("RUN_JOB")
    if value is None:
        return None
    if value.startswith("projects/"):
        if not re.fullmatch(r"projects/[^/]+/locations/[^/]+/jobs/[^/]+", value):
            r.problems.append(f"RUN_JOB={value!r} must be projects/P/locations/R/jobs/J or J")
        return value
    if "/" in value or project is None or region is None:
        r.problems.append(
            f"RUN_JOB={value!r}: a bare job name needs GOOGLE_CLOUD_PROJECT and REGION "
            "(or give projects/P/locations/R/jobs/J)"
        )
        return None
    return f"projects/{project}/locations/{region}/jobs/{value}"


def _endpoint(r: _Reader, name: str) -> str | None:
    value = r.text(name)
    if value is not None and not re.fullmatch(r"https?://[^\s/]+(/[^\s]*)?", value):
        r.problems.append(f"{name}={value!r} must be an http(s):// URL")
        return None
    return value.rstrip("/") if value else None


@dataclass(frozen=True)
class HttpSettings:
    """HTTP mode (``main.py``, ``worker.http``): the Cloud Run service and its Runpod-style API.

    API keys are optional: without any, access is Cloud Run IAM's alone (the service is private
    by default). ``API_KEYS_FILE`` is where Cloud Run mounts a Secret Manager secret (one key
    per line; blank lines and ``#`` comments ignored); ``API_KEYS`` the same as an env secret,
    comma-separated. Keys are never logged.
    """

    execute: bool = True  # run jobs on this instance (an executor); false: a gateway only
    api_keys_file: Path | None = None
    api_keys: tuple[str, ...] = ()
    inline_max_bytes: int = 8 * MiB  # outputs returned inline (base64), together
    runsync_wait_s: float = 60.0  # runsync without an executor: wait this long, then IN_QUEUE
    purge_queue: bool = False  # allow /v2/{endpoint}/purge-queue (seeks the job subscription)

    @classmethod
    def read(cls, r: _Reader) -> HttpSettings:
        keys_file = r.text("API_KEYS_FILE")
        return cls(
            execute=r.flag("HTTP_EXECUTE", cls.execute),
            api_keys_file=Path(keys_file) if keys_file else None,
            api_keys=tuple(k for k in r.items("API_KEYS")),
            inline_max_bytes=r.integer("INLINE_MAX_BYTES", cls.inline_max_bytes, 0, 24 * MiB),
            runsync_wait_s=r.number("RUNSYNC_WAIT_S", cls.runsync_wait_s, 0.0, 800.0),
            purge_queue=r.flag("PURGE_QUEUE_ENABLED", cls.purge_queue),
        )


@dataclass(frozen=True)
class Settings:
    project: str | None = None
    jobs_subscription: str | None = None
    results_topic: str | None = None
    jobs_topic: str | None = None
    output_uri: str | None = None
    manifest_uri: str | None = None
    max_jobs: int = 0  # 0: no limit
    max_consecutive_transient: int = 3
    # Earlier attempts that died with their process before a job is failed as worker_crashed;
    # 0 turns crash accounting off (attempt records are then written in the background).
    max_crashed_attempts: int = 2
    # The job subscription's maxDeliveryAttempts (infra/pubsub.tf): the last attempt writes
    # retries_exhausted instead of nacking a transient failure into the dead-letter topic.
    max_delivery_attempts: int = 5
    work_dir: Path = Path("/tmp/worker")
    # module:function returning the Executor; the embedded ComfyUI one unless you plug in another
    executor: str = "worker.executor.comfy:build_executor"
    log_level: str = "INFO"
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
        r = _Reader(env)
        project = r.text("GOOGLE_CLOUD_PROJECT")
        log_level = (r.text("LOG_LEVEL", "INFO") or "INFO").upper()
        if log_level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            r.problems.append(f"LOG_LEVEL={log_level!r} must be DEBUG, INFO, WARNING or ERROR")
        settings = cls(
            project=project,
            jobs_subscription=_resource(r, "JOBS_SUBSCRIPTION", "subscriptions", project),
            results_topic=_resource(r, "RESULTS_TOPIC", "topics", project),
            jobs_topic=_resource(r, "JOBS_TOPIC", "topics", project),
            output_uri=r.gs_uri("OUTPUT_URI"),
            manifest_uri=r.gs_uri("MANIFEST_URI"),
            max_jobs=r.integer("MAX_JOBS", 0, 0),
            max_consecutive_transient=r.integer("MAX_CONSECUTIVE_TRANSIENT", 3, 1),
            max_crashed_attempts=r.integer(
                "MAX_CRASHED_ATTEMPTS", cls.max_crashed_attempts, 0, 100
            ),
            max_delivery_attempts=r.integer(
                "MAX_DELIVERY_ATTEMPTS", cls.max_delivery_attempts, 5, 100
            ),
            work_dir=Path(r.text("WORK_DIR", "/tmp/worker") or "/tmp/worker"),
            executor=r.text("EXECUTOR", cls.executor) or cls.executor,
            log_level=log_level,
            limits=Limits.read(r),
            timeouts=Timeouts.read(r),
            identity=Identity.read(r),
            comfy=ComfySettings.read(r, project),
            models=ModelSettings.read(r),
            producer=ProducerSettings.read(r),
            cost=CostSettings.read(r),
            observability=ObservabilitySettings.read(r),
            http=HttpSettings.read(r),
        )
        t = settings.timeouts
        if t.stop_margin_s >= t.task_s:
            r.problems.append(f"STOP_MARGIN_S={t.stop_margin_s} must be below TASK_TIMEOUT_S")
        if settings.identity.task_index >= settings.identity.task_count:
            r.problems.append("CLOUD_RUN_TASK_INDEX must be below CLOUD_RUN_TASK_COUNT")
        if r.problems:
            raise ConfigError("invalid configuration:\n  " + "\n  ".join(r.problems))
        return settings

    def require(self, *names: str) -> None:
        """Fail with one message naming every required variable that is unset."""
        attrs = {
            "JOBS_SUBSCRIPTION": self.jobs_subscription,
            "RESULTS_TOPIC": self.results_topic,
            "JOBS_TOPIC": self.jobs_topic,
            "OUTPUT_URI": self.output_uri,
            "GOOGLE_CLOUD_PROJECT": self.project,
        }
        missing = [name for name in names if attrs[name] is None]
        if missing:
            raise ConfigError("missing required setting(s): " + ", ".join(missing))

    def in_slot(self, slot_dir: Path) -> Settings:
        """These settings for a process that owns ``slot_dir`` of ``WORK_DIR``
        (``worker.loop.workdir``): its jobs and ComfyUI's folders go there, while the model cache
        stays shared."""
        comfy = self.comfy
        if comfy.model_cache_dir is None:
            comfy = dataclasses.replace(comfy, model_cache_dir=self.work_dir / "models")
        return dataclasses.replace(self, work_dir=slot_dir, comfy=comfy)

    @property
    def output_bucket(self) -> str:
        assert self.output_uri is not None
        return self.output_uri.removeprefix("gs://").split("/", 1)[0]
