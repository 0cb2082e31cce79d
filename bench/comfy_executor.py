"""Embedded executor vs ComfyUI's own server, on the same ComfyUI, the same workflows, one run.

The server path is driven the way Runpod's worker-comfyui drives it: per job a websocket to
``/ws?clientId=``, ``POST /prompt``, wait for ``executing`` with ``node: null``, ``GET /history``,
then ``GET /view`` for every output file. The embedded path is ``ComfyExecutor.execute`` plus
reading the output files. Both run in child processes started by this script, one after the
other (never at once), with ComfyUI on the same device, metadata off, API nodes off.

Measured per path:
- ``ready_s``: process start -> ready (``start()`` returned / the HTTP API answers);
- ``first_running_s``: process start -> the first job's first node starts executing;
- per-job latency for the model-free workflow (distinct inputs, so nothing is cached) and for
  the random-weight SD1.5 workflow (a new seed each job; the model stays loaded).

Run (needs the ComfyUI venv; the SD1.5 checkpoint is generated once, ~2 GB):

    COMFYUI_DIR=/path/to/ComfyUI /path/to/venv/bin/python bench/comfy_executor.py [--jobs 30]
    [--sd-jobs 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.comfy import sd15, workflows  # noqa: E402
from worker.local.emulators import free_port  # noqa: E402


def emit(event: str, **fields: Any) -> None:
    print(json.dumps({"event": event, **fields}), flush=True)


# -- the embedded child ---------------------------------------------------------------------


def embedded_child(work: Path, models: Path, jobs: int, sd_jobs: int, ckpt: str) -> None:
    from worker.config import Settings
    from worker.executor.base import ExecRequest, Progress
    from worker.executor.comfy.executor import ComfyExecutor
    from worker.obs import logs

    logs.setup("WARNING")
    settings = Settings.from_env(
        {
            "COMFYUI_DIR": os.environ["COMFYUI_DIR"],
            "WORK_DIR": str(work),
            "MODELS_DIR": str(models),
            "PROGRESS_INTERVAL_S": "0",
        }
    )
    executor = ComfyExecutor(settings)
    executor.start()
    emit("ready", t=time.monotonic())
    first: list[float] = []

    def on_progress(p: Progress) -> None:
        if not first:
            first.append(time.monotonic())
            emit("first_running", t=first[0])

    def run(kind: str, n: int, workflow: dict[str, Any]) -> None:
        base = work / "jobs" / f"{kind}-{n}"
        (base / "in").mkdir(parents=True)
        started = time.monotonic()
        result = executor.execute(
            ExecRequest(f"{kind}-{n}", workflow, base / "in", base / "out", progress=on_progress)
        )
        for output in result.outputs:
            output.path.read_bytes()  # outputs in hand, as /view gives them to the server path
        latency = time.monotonic() - started
        booted = executor.comfy
        assert booted is not None
        emit(
            "job",
            kind=kind,
            latency_s=latency,
            comfy_s=_span(booted.prompt_executor.status_messages),
        )

    for n in range(jobs):
        run("model_free", n, workflows.model_free(color=n * 0x010101))
    for n in range(sd_jobs):
        run("sd15", n, workflows.sd15(ckpt, seed=n + 1))
    executor.close()


def _span(messages: list[tuple[str, dict[str, Any]]]) -> float:
    """ComfyUI's own execution time of a prompt, from its status messages' ms timestamps (the
    same numbers a server client receives): what both paths share, the rest is overhead."""
    at = {event: data["timestamp"] for event, data in messages if "timestamp" in data}
    return float(at["execution_success"] - at["execution_start"]) / 1000.0


# -- the server path ------------------------------------------------------------------------


async def server_client(
    base: str, jobs: int, sd_jobs: int, ckpt: str, started: float, process: subprocess.Popen[bytes]
) -> None:
    aiohttp: Any = importlib.import_module("aiohttp")
    async with aiohttp.ClientSession() as session:
        while True:  # worker-comfyui polls the API until ComfyUI answers
            if process.poll() is not None:
                raise RuntimeError(f"ComfyUI exited with {process.returncode}")
            try:
                async with session.get(f"{base}/system_stats") as r:
                    if r.status == 200:
                        break
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.02)
        emit("ready", t=time.monotonic())
        first: list[float] = []
        for n in range(jobs):
            await server_job(
                session, base, "model_free", workflows.model_free(color=n * 0x010101), first
            )
        for n in range(sd_jobs):
            await server_job(session, base, "sd15", workflows.sd15(ckpt, seed=n + 1), first)
    del started


async def server_job(
    session: Any, base: str, kind: str, workflow: dict[str, Any], first: list[float]
) -> None:
    client_id = os.urandom(8).hex()
    begin = time.monotonic()
    async with session.ws_connect(f"{base.replace('http', 'ws')}/ws?clientId={client_id}") as ws:
        async with session.post(
            f"{base}/prompt", json={"prompt": workflow, "client_id": client_id}
        ) as r:
            prompt_id = (await r.json())["prompt_id"]
        messages: list[tuple[str, dict[str, Any]]] = []
        async for msg in ws:
            if not isinstance(msg.data, str):
                continue  # binary previews
            m = json.loads(msg.data)
            data = m.get("data", {})
            if data.get("prompt_id") != prompt_id:
                continue
            messages.append((m["type"], data))
            if m["type"] in ("execution_error", "execution_interrupted"):
                raise RuntimeError(f"server job failed: {m}")
            if m["type"] == "executing":
                if data.get("node") is None:
                    break
                if not first:
                    first.append(time.monotonic())
                    emit("first_running", t=first[0])
    async with session.get(f"{base}/history/{prompt_id}") as r:
        history = await r.json()
    for node_output in history[prompt_id]["outputs"].values():
        for item in node_output.get("images", []):
            async with session.get(f"{base}/view", params=item) as r:
                await r.read()
    emit("job", kind=kind, latency_s=time.monotonic() - begin, comfy_s=_span(messages))


def server_run(
    work: Path, models: Path, jobs: int, sd_jobs: int, ckpt: str
) -> list[dict[str, Any]]:
    from worker.executor.comfy import gpu

    comfyui = Path(os.environ["COMFYUI_DIR"])
    dirs = {name: work / name for name in ("output", "input", "temp", "user")}
    for d in dirs.values():
        d.mkdir(parents=True, exist_ok=True)
    paths = work / "extra_model_paths.yaml"
    paths.write_text(f"bench:\n  base_path: {models}\n  checkpoints: checkpoints\n")
    port = free_port()
    argv = [
        sys.executable,
        "main.py",
        "--listen",
        "127.0.0.1",
        "--port",
        str(port),
        "--disable-api-nodes",
        "--disable-metadata",
        "--disable-auto-launch",
        "--dont-print-server",
        "--extra-model-paths-config",
        str(paths),
        "--database-url",
        f"sqlite:///{work / 'comfyui.db'}",
    ]
    argv += [f"--{k}-directory={v}" for k, v in dirs.items()]
    argv += [] if gpu.nvidia_visible() else ["--cpu"]
    events: list[dict[str, Any]] = []
    started = time.monotonic()
    with (work / "server.log").open("wb") as log:
        process = subprocess.Popen(argv, cwd=comfyui, stdout=log, stderr=subprocess.STDOUT)
        try:
            out = _capture(
                lambda: asyncio.run(
                    server_client(f"http://127.0.0.1:{port}", jobs, sd_jobs, ckpt, started, process)
                )
            )
        finally:
            process.terminate()
            process.wait(timeout=30)
    for line in out:
        events.append(json.loads(line) | {"start": started})
    return events


def _capture(fn: Any) -> list[str]:
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        fn()
    return buf.getvalue().splitlines()


def embedded_run(
    work: Path, models: Path, jobs: int, sd_jobs: int, ckpt: str
) -> list[dict[str, Any]]:
    argv = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--child",
        str(work),
        str(models),
        str(jobs),
        str(sd_jobs),
        ckpt,
    ]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    work.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with (work / "embedded.log").open("wb") as log:
        done = subprocess.run(argv, env=env, stdout=subprocess.PIPE, stderr=log, check=True)
    return [
        json.loads(line) | {"start": started}
        for line in done.stdout.decode().splitlines()
        if line.startswith("{")
    ]


# -- report ---------------------------------------------------------------------------------


def summarise(events: list[dict[str, Any]]) -> dict[str, Any]:
    start = events[0]["start"]
    at = {e["event"]: e["t"] - start for e in events if e["event"] in ("ready", "first_running")}
    out: dict[str, Any] = {
        "ready_s": round(at["ready"], 3),
        "first_running_s": round(at["first_running"], 3),
    }
    for kind in ("model_free", "sd15"):
        lat = [e["latency_s"] for e in events if e["event"] == "job" and e["kind"] == kind]
        if lat:
            out[kind] = {
                "first_s": round(lat[0], 4),
                "jobs": len(lat),
                "median_warm_s": round(statistics.median(lat[1:] or lat), 4),
            }
    return out


def per_job(rounds: list[list[dict[str, Any]]], kind: str) -> dict[str, Any] | None:
    """Warm jobs (each round's first job of a kind left out), pooled over rounds."""
    jobs: list[dict[str, Any]] = []
    for events in rounds:
        mine = [e for e in events if e["event"] == "job" and e["kind"] == kind]
        jobs += mine[1:]
    if not jobs:
        return None
    overhead = [e["latency_s"] - e["comfy_s"] for e in jobs]
    return {
        "jobs": len(jobs),
        "median_latency_ms": round(1000 * statistics.median(e["latency_s"] for e in jobs), 2),
        "mean_comfy_ms": round(1000 * statistics.fmean(e["comfy_s"] for e in jobs), 2),
        "mean_overhead_ms": round(1000 * statistics.fmean(overhead), 2),
    }


def startup(rounds: list[list[dict[str, Any]]]) -> dict[str, Any]:
    """Median over rounds, and each round's value (the spread shows how noisy the machine is)."""
    s = [summarise(events) for events in rounds]
    out: dict[str, Any] = {}
    for key in ("ready_s", "first_running_s"):
        out[key] = round(statistics.median(x[key] for x in s), 3)
        out[key[:-2] + "_rounds_s"] = [x[key] for x in s]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=30, help="model-free jobs per path and round")
    parser.add_argument("--sd-jobs", type=int, default=3, help="SD1.5 jobs per path and round")
    parser.add_argument("--rounds", type=int, default=2, help="boots per path (ABBA order)")
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    args = parser.parse_args()
    comfyui = Path(os.environ["COMFYUI_DIR"])
    ckpt = sd15.ensure(comfyui) if args.sd_jobs else Path("none.safetensors")
    models = sd15.cache_dir()
    runs: dict[str, list[list[dict[str, Any]]]] = {"embedded": [], "server": []}
    with tempfile.TemporaryDirectory(prefix="comfy-bench-") as tmp:
        for r in range(args.rounds):
            order = ("embedded", "server") if r % 2 == 0 else ("server", "embedded")
            for path in order:
                fn = embedded_run if path == "embedded" else server_run
                runs[path].append(
                    fn(Path(tmp) / f"{path}-{r}", models, args.jobs, args.sd_jobs, ckpt.name)
                )
    report: dict[str, Any] = {
        "device": "cuda"
        if importlib.import_module("worker.executor.comfy.gpu").nvidia_visible()
        else "cpu",
        "cpus": os.cpu_count(),
        "rounds": args.rounds,
    }
    for path, rounds in runs.items():
        report[path] = startup(rounds) | {k: per_job(rounds, k) for k in ("model_free", "sd15")}
    e, s = report["embedded"], report["server"]
    report["ratios"] = {
        "model_free_overhead_server_over_embedded": round(
            s["model_free"]["mean_overhead_ms"] / e["model_free"]["mean_overhead_ms"], 2
        ),
        "model_free_latency_server_over_embedded": round(
            s["model_free"]["median_latency_ms"] / e["model_free"]["median_latency_ms"], 2
        ),
        "first_running_embedded_over_server": round(e["first_running_s"] / s["first_running_s"], 3),
        "ready_embedded_over_server": round(e["ready_s"] / s["ready_s"], 3),
    }
    if e.get("sd15") and s.get("sd15"):
        report["ratios"]["sd15_latency_server_over_embedded"] = round(
            s["sd15"]["median_latency_ms"] / e["sd15"]["median_latency_ms"], 3
        )
    print(json.dumps(report, indent=2))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        w, m, j, s, c = sys.argv[2:7]
        embedded_child(Path(w), Path(m), int(j), int(s), c)
    else:
        main()
