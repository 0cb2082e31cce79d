"""The worker against bare ComfyUI in-process (the limit), on the same prompts, in one run.

    COMFYUI_DIR=/path/to/ComfyUI VENV/bin/python -m bench.bare_vs_worker \
        [--kinds mf mf2mb sd15] [--jobs 40] [--sd-jobs 8] [--rounds 2] [--json out.json]

Both paths run in child processes, one at a time, ABBA over rounds, with the same Pub/Sub
emulator and fake-gcs-server up for both:

- ``bare``: ``bench/bare_comfy.py``, ComfyUI's own ``PromptExecutor`` driven as ``main.py``'s
  ``prompt_worker`` drives it, no project code; its input files are on disk before it starts;
- ``worker``: ``python -m worker run`` with its defaults (crash accounting on, ``LOG_LEVEL=INFO``,
  progress events on a ``PROGRESS_TOPIC``) draining a backlog published before it starts, with
  ``MAX_JOBS`` set to the backlog so it exits when done.

Workflows (``kinds``), each job a new seed or colour so nothing upstream is cached:

- ``mf``: model-free 512x512 EmptyImage -> ImageInvert -> ImageBlur -> SaveImage; each message
  also carries a 2 MB image as base64 (about 2.8 MB of text), staged and not read;
- ``mf2mb``: the same, plus LoadImage(that image) -> SaveImage: a 2 MB input read and a 2 MB
  output written (and, by the worker, uploaded) per job;
- ``sd15``: random-weight SD1.5, 64x64, 2 steps, plus the same 2 MB LoadImage -> SaveImage.

Per path and kind: ``per_job_ms`` = the median gap from one job's start to the next one's (jobs
after the first; the worker's from its ``job.started`` lines), ``exec_ms`` (the executor's own
time per job), ``first_result_s`` = process start -> the first job's result (bare: its
``execute`` returned; worker: ``job.succeeded``, i.e. outputs, ``result.json`` and event
written), ``first_cpu_s`` = the CPU seconds (all threads) it used until then, which a busy
host stretches less than wall time, ``cpu_ms`` = CPU per job after the first (the path's whole
process tree: the worker's executor process and ``base64 -d`` decoders count),
``services_cpu_ms`` = the emulators' CPU per job over the run, and the worker's boot phases
(``comfyui.booted``).
"""

from __future__ import annotations

import argparse
import base64
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.loop_overhead import png_bytes
from tests import proctree
from tests.cloud import Cloud
from tests.comfy import sd15, workflows
from worker.executor.comfy import gpu
from worker.local import emulators

REPO = Path(__file__).resolve().parent.parent
SIDE_BYTES = 2 * 1024 * 1024


def mf(n: int, side: str | None) -> dict[str, Any]:
    wf: dict[str, Any] = {
        "1": {
            "class_type": "EmptyImage",
            "inputs": {"width": 512, "height": 512, "batch_size": 1, "color": n * 0x010101},
        },
        "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
        "3": {
            "class_type": "ImageBlur",
            "inputs": {"image": ["2", 0], "blur_radius": 3, "sigma": 1.0},
        },
        "4": {"class_type": "SaveImage", "inputs": {"images": ["3", 0], "filename_prefix": "mf"}},
    }
    return wf | (side_branch(side) if side else {})


def side_branch(name: str) -> dict[str, Any]:
    return {
        "90": {"class_type": "LoadImage", "inputs": {"image": name}},
        "91": {
            "class_type": "SaveImage",
            "inputs": {"images": ["90", 0], "filename_prefix": "side"},
        },
    }


def prompts(kind: str, jobs: int, ckpt: str) -> list[tuple[dict[str, Any], str]]:
    """(workflow, name of its 2 MB input) per job."""
    out = []
    for n in range(jobs):
        side = f"side-{n}.png"
        if kind == "mf":
            out.append((mf(n, None), side))
        elif kind == "mf2mb":
            out.append((mf(n, side), side))
        else:
            out.append((workflows.sd15(ckpt, seed=n + 1) | side_branch(side), side))
    return out


# -- the two paths ---------------------------------------------------------------------------


def run_bare(
    work: Path, kind: str, jobs: list[tuple[dict[str, Any], str]], models: Path
) -> dict[str, Any]:
    dirs = {k: work / k for k in ("output", "input", "temp", "user")}
    for d in dirs.values():
        d.mkdir(parents=True)
    for _, side in jobs:
        (dirs["input"] / side).write_bytes(png_bytes(SIDE_BYTES))
    argv = ["--disable-api-nodes", "--disable-metadata"]
    argv += [] if gpu.nvidia_visible() else ["--cpu"]
    argv += [f"--{k}-directory={v}" for k, v in dirs.items()]
    spec = {
        "argv": argv,
        "checkpoints": str(models / "checkpoints"),
        "prompts": [[kind, wf] for wf, _ in jobs],
    }
    (work / "spec.json").write_text(json.dumps(spec))
    script = REPO / "bench" / "bare_comfy.py"
    started = time.time()
    code, out, cpu = run_child(
        profiled([sys.executable, str(script), str(work / "spec.json")], work.name),
        work / "bare.log",
        cwd=os.environ["COMFYUI_DIR"],
        env={**os.environ, **both_env},
    )
    if code != 0:
        raise RuntimeError(f"bare ComfyUI exited {code}: see {work / 'bare.log'}")
    events = [json.loads(line) for line in out.decode().splitlines() if line[:1] == "{"]
    runs = [e for e in events if e["event"] == "job"]
    ready = next(e["t"] for e in events if e["event"] == "ready")
    return summary(
        started,
        [r["start"] for r in runs],
        [r["end"] - r["start"] for r in runs],
        runs[0]["end"],
        {e["name"]: round(e["s"], 3) for e in events if e["event"] == "phase"},
        ready,
        cpu.between(runs[0]["end"], runs[-1]["end"]),
        cpu.between(started, runs[0]["end"]),
        cpu.services_s,
    )


def run_worker(
    cloud: Cloud, work: Path, jobs: list[tuple[dict[str, Any], str]], models: Path, repo: Path
) -> dict[str, Any]:
    progress = f"projects/{cloud.jobs_topic.split('/')[1]}/topics/progress-{cloud.suffix}"
    cloud.publisher.create_topic(name=progress)
    for n, (wf, side) in enumerate(jobs):
        data = base64.b64encode(png_bytes(input_bytes[0])).decode()
        inputs = [{"name": side, "data": data}] if input_bytes[0] else []
        cloud.publish({"job_id": f"j{n:04d}", "workflow": wf, "inputs": inputs})
    log_path = work / "worker.log"
    env = {
        **os.environ,
        **cloud.env(
            EXECUTOR="worker.executor.comfy:build_executor",
            COMFYUI_DIR=os.environ["COMFYUI_DIR"],
            MODELS_DIR=str(models),
            MAX_JOBS=str(len(jobs)),
            IDLE_EXIT_S="30",
            LOG_LEVEL="INFO",
            LEASE_EXTENSION_S="60",
            SERVICE_RETRY_S="30",
            PROGRESS_TOPIC=progress,
        ),
        "PYTHONPATH": str(repo),
    }
    env.update(both_env | worker_env_overrides)
    started = time.time()
    code, _, cpu = run_child(
        profiled([sys.executable, "-m", "worker", "run"], work.name),
        log_path,
        cwd=repo,
        env=env,
    )
    lines = [json.loads(x) for x in log_path.read_text().splitlines() if x[:1] == "{"]
    if code != 0:
        raise RuntimeError(f"worker exited {code}: see {log_path}")

    def at(line: dict[str, Any]) -> float:
        return datetime.fromisoformat(line["time"]).timestamp()

    begun = [at(x) for x in lines if x.get("message") == "job.started"]
    ok = [x for x in lines if x.get("message") == "job.succeeded"]
    if len(ok) != len(jobs):
        raise RuntimeError(f"{len(ok)} of {len(jobs)} jobs succeeded: see {log_path}")
    booted = next(x for x in lines if x.get("message") == "comfyui.booted")
    ready = next(x for x in lines if x.get("message") == "worker.ready")
    first = min(at(x) for x in ok)
    return summary(
        started,
        begun,
        [x["execution_s"] for x in ok],
        first,
        booted.get("phases", {}) | {"boot_s": booted["boot_s"]},
        at(ready),
        cpu.between(first, max(at(x) for x in ok)),
        cpu.between(started, first),
        cpu.services_s,
    )


worker_env_overrides: dict[str, str] = {}
input_bytes = [SIDE_BYTES]
both_env: dict[str, str] = {}  # --env: for both paths (say OMP_NUM_THREADS=1)
repos: dict[str, Path] = {"worker": REPO}  # "before": --before REPO, another checkout's worker


def _stat(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def _cpu_ticks(pid: int) -> int:
    """utime + stime of ``pid`` and of the children it has reaped; 0 once it is gone."""
    try:
        fields = _stat(pid)
    except OSError:
        return 0
    return sum(int(fields[i]) for i in (11, 12, 13, 14))


def tree_cpu_s(pid: int) -> float:
    """CPU seconds of ``pid`` and its live descendants (all threads), plus what the children it
    has reaped used (``base64 -d`` decoders, an ended executor process)."""
    return sum(_cpu_ticks(p) for p in proctree.tree(pid)) / os.sysconf("SC_CLK_TCK")


def group_cpu_s(groups: set[int]) -> float:
    """CPU seconds of every live process in these process groups (the emulators' launchers and
    the JVM or server they start)."""
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            group = int(_stat(int(entry.name))[2])
        except OSError:
            continue
        if group in groups:
            total += _cpu_ticks(int(entry.name))
    return total / os.sysconf("SC_CLK_TCK")


class CpuWatch:
    """Samples a child's CPU seconds (its whole process tree: the worker's executor process and
    decoders too) every 50 ms, to tell the CPU it used after it was ready (the jobs) from its
    boot: less noisy than wall time on a shared host. ``services`` (process groups) are read at
    the start and the end: the emulators' CPU for the whole run."""

    def __init__(self, process: subprocess.Popen[bytes], services: set[int]) -> None:
        self._pid = process.pid
        self._process = process
        self._services = services
        self._services_at_start = group_cpu_s(services)
        self.services_s = 0.0
        self.samples: list[tuple[float, float]] = []
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while self._process.poll() is None:
            self.samples.append((time.time(), tree_cpu_s(self._pid)))
            time.sleep(0.05)
        self.services_s = group_cpu_s(self._services) - self._services_at_start

    def between(self, t0: float, t1: float) -> float:
        """CPU seconds used from ``t0`` to ``t1`` (the samples nearest after each)."""
        self._thread.join()

        def at(t: float) -> float:
            if not self.samples or t <= self.samples[0][0]:
                return 0.0  # before the first sample: the process had just started
            return next((cpu for when, cpu in self.samples if when >= t), self.samples[-1][1])

        return at(t1) - at(t0)


services: set[int] = set()  # the emulators' process groups, once they run


def run_child(argv: list[str], log: Path, **kwargs: Any) -> tuple[int, bytes, CpuWatch]:
    with log.open("wb") as err:
        process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=err, **kwargs)
        watch = CpuWatch(process, services)
        out, _ = process.communicate()
    return process.returncode, out, watch


profile: dict[str, str] = {}  # "py_spy": the binary, "dir": where the profiles go


def profiled(argv: list[str], name: str) -> list[str]:
    """``argv`` under ``py-spy record --gil --threads`` when ``--py-spy`` is given."""
    if not profile:
        return argv
    out = Path(profile["dir"]) / f"{name}.txt"
    mode = {"idle": ["--idle"], "gil": ["--gil"], "cpu": []}[profile.get("mode") or "gil"]
    return [
        profile["py_spy"],
        "record",
        *mode,
        "--threads",
        "-r",
        "200",
        "-f",
        "raw",
        "-o",
        str(out),
        "--",
        *argv,
    ]


def summary(
    started: float,
    starts: list[float],
    execs: list[float],
    first_result: float,
    phases: dict[str, float],
    ready: float,
    cpu_s: float,
    first_cpu_s: float,
    services_s: float,
) -> dict[str, Any]:
    gaps = [b - a for a, b in itertools.pairwise(starts[1:])]
    return {
        "per_job_ms": round(1000 * statistics.median(gaps), 2),
        "per_job_mean_ms": round(1000 * statistics.fmean(gaps), 2),
        "exec_ms": round(1000 * statistics.median(execs[1:]), 2),
        "cpu_ms": round(1000 * cpu_s / max(1, len(starts) - 1), 2),
        # The emulators' CPU over the whole run, per job (bare uses none of them).
        "services_cpu_ms": round(1000 * services_s / max(1, len(starts)), 2),
        "first_exec_s": round(execs[0], 3),
        "ready_s": round(ready - started, 3),
        "first_result_s": round(first_result - started, 3),
        "first_cpu_s": round(first_cpu_s, 2),  # CPU seconds to the first result: load-proof
        "phases": phases,
    }


# -- the run ---------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kinds", nargs="+", default=["mf", "mf2mb", "sd15"])
    ap.add_argument("--jobs", type=int, default=40, help="model-free jobs per run")
    ap.add_argument("--sd-jobs", type=int, default=8, help="SD1.5 jobs per run")
    ap.add_argument("--rounds", type=int, default=2, help="ABBA rounds")
    ap.add_argument("--worker-env", nargs="*", default=[], help="KEY=VALUE for the worker")
    ap.add_argument("--env", nargs="*", default=[], help="KEY=VALUE for both paths")
    ap.add_argument("--paths", nargs="+", default=["bare", "worker"], help="which to run")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--keep", type=Path, help="work in this (empty) folder and keep it: logs")
    ap.add_argument(
        "--before", type=Path, help="also run this checkout's worker (path 'before'), same rounds"
    )
    ap.add_argument("--py-spy", nargs=2, metavar=("PY_SPY", "DIR"), help="profile both paths")
    ap.add_argument("--idle", action="store_true", help="py-spy: all samples, not GIL holders")
    ap.add_argument(
        "--cpu", action="store_true", help="py-spy: every thread on a CPU, GIL held or not"
    )
    ap.add_argument("--input-bytes", type=int, default=SIDE_BYTES, help="base64 input per job")
    args = ap.parse_args()
    return args


def main() -> None:
    args = parse_args()
    if args.py_spy:
        mode = "idle" if args.idle else "cpu" if args.cpu else "gil"
        profile.update(py_spy=args.py_spy[0], dir=args.py_spy[1], mode=mode)
        Path(args.py_spy[1]).mkdir(parents=True, exist_ok=True)
    worker_env_overrides.update(kv.split("=", 1) for kv in args.worker_env)
    both_env.update(kv.split("=", 1) for kv in args.env)
    input_bytes[0] = args.input_bytes
    if args.before:
        repos["before"] = args.before.resolve()
        args.paths = [*args.paths, "before"]
    comfyui = Path(os.environ["COMFYUI_DIR"])
    ckpt = sd15.ensure(comfyui).name if "sd15" in args.kinds else "none.safetensors"
    models = sd15.cache_dir()
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bare-vs-worker-") as tmp:
        root = Path(tmp)
        if args.keep:  # the children's logs (worker.log, bare.log) stay there
            root = args.keep.resolve()
            root.mkdir(parents=True, exist_ok=True)
        ps = emulators.start_pubsub(root / "logs")
        gcs = emulators.start_gcs(root / "logs")
        services.update({ps.process.pid, gcs.process.pid})  # each leads its process group
        os.environ["PUBSUB_EMULATOR_HOST"] = ps.host
        os.environ["STORAGE_EMULATOR_HOST"] = f"http://{gcs.host}"
        try:
            for r in range(args.rounds):
                order = ("bare", "worker", "before")
                order = order if r % 2 == 0 else order[::-1]
                for kind in args.kinds:
                    n = args.sd_jobs if kind == "sd15" else args.jobs
                    jobs = prompts(kind, n, ckpt)
                    for path in (p for p in order if p in args.paths):
                        work = root / f"{kind}-{path}-{r}"
                        work.mkdir()
                        if path == "bare":
                            row = run_bare(work, kind, jobs, models)
                        else:
                            suffix = uuid.uuid4().hex[:8]
                            cloud = Cloud.create(
                                suffix, work / "w", ps.host, f"http://{gcs.host}", 60
                            )
                            row = run_worker(cloud, work, jobs, models, repos[path])
                        rows.append({"round": r, "kind": kind, "path": path, **row})
                        print(json.dumps(rows[-1]), flush=True)
        finally:
            ps.stop()
            gcs.stop()
    report = compare(rows, args.kinds) if {"bare", "worker"} <= set(args.paths) else {}
    print(json.dumps(report, indent=2))
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "report": report}, indent=2))


def compare(rows: list[dict[str, Any]], kinds: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {"cpus": os.cpu_count(), "load_avg": os.getloadavg()}
    for kind in kinds:
        med: dict[str, dict[str, float]] = {}
        for path in sorted({r["path"] for r in rows}):
            mine = [r for r in rows if r["kind"] == kind and r["path"] == path]
            med[path] = {
                k: round(statistics.median(r[k] for r in mine), 3)
                for k in (
                    "per_job_ms",
                    "exec_ms",
                    "cpu_ms",
                    "services_cpu_ms",
                    "first_exec_s",
                    "first_result_s",
                    "first_cpu_s",
                    "ready_s",
                )
            }
        b, w = med["bare"], med["worker"]
        out[kind] = med | {
            "per_job_delta_ms": round(w["per_job_ms"] - b["per_job_ms"], 2),
            "per_job_ratio": round(w["per_job_ms"] / b["per_job_ms"], 3),
            "cpu_delta_ms": round(w["cpu_ms"] - b["cpu_ms"], 2),
            "first_result_ratio": round(w["first_result_s"] / b["first_result_s"], 3),
            "first_cpu_ratio": round(w["first_cpu_s"] / max(b["first_cpu_s"], 0.01), 3),
        }
        if "before" in med:
            out[kind]["before_per_job_ratio"] = round(
                med["before"]["per_job_ms"] / b["per_job_ms"], 3
            )
            out[kind]["before_first_result_ratio"] = round(
                med["before"]["first_result_s"] / b["first_result_s"], 3
            )
    return out


if __name__ == "__main__":
    main()
