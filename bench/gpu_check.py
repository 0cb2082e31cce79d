"""The seed plan's service checks on this machine's GPU, in one run, printed as one table.

    COMFYUI_DIR=/path/to/ComfyUI VENV/bin/python -m bench.gpu_check [--markdown FILE]
    COMFYUI_DIR=/path/to/ComfyUI VENV/bin/python -m bench.gpu_check --cpu-smoke   # tiny, on CPU

Serves ``main.py`` with functions-framework (as ``python main.py --test`` does: the Pub/Sub
emulator and fake-gcs-server behind it) with ``COMFYUI_DEVICE=cuda``, and measures, from the
moment the server process is started:

1. service up: the first ``/healthz`` 200, and how long one takes (median of 5);
2. cold start: ``/ready`` 200 (the executor booted), under 120 s;
3. one SD1.5-architecture job (``tests/comfy/sd15.py``'s random-weight checkpoint, generated on
   the first run into ``COMFY_TEST_CACHE``; default 512x512, 20 steps) via ``/predict?inline=1``,
   under 30 s, model loading included; its response is the process's first image;
4. the same job again, warm;
5. a 2048x2048 SD1.5 job (default 4 steps) with no OOM (it succeeds, the server stays ready;
   peak GPU memory from ``nvidia-smi`` when there is one), and while it runs a second
   ``/predict`` refused with 429 and ``Retry-After``.

``--cpu-smoke`` runs the same steps on CPU with tiny sizes (64x64 and 128x128, 2 and 1 steps) to
check the script end to end without a GPU; its times say nothing about a GPU. Exit 0 when every
check passed. CI never runs it. A developer tool: options from the command line only.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.comfy import sd15, workflows
from tests.comfy.test_http import peak_rss_mib
from worker.local import emulators, stack
from worker.local.http_selftest import Answer, request, server_env, spawn, wait_for


@dataclass
class Row:
    check: str
    target: str
    measured: str
    ok: bool | None  # None: measured, no pass/fail


def device_name(cpu: bool) -> str:
    """The GPU ComfyUI runs on (torch.cuda.get_device_name), asked in a child process so that
    this one holds no CUDA context; "cpu" for a smoke run or where CUDA is not visible."""
    code = (
        "import torch; print(torch.cuda.get_device_name(0) if torch.cuda.is_available() "
        "else 'cpu', torch.__version__, torch.version.cuda or '-')"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    ).stdout.split()
    if not out:
        return "unknown (torch did not answer)"
    name, torch_v, cuda_v = " ".join(out[:-2]), out[-2], out[-1]
    if cpu:
        return f"cpu (smoke run; torch {torch_v})"
    return f"{name} (torch {torch_v}, CUDA {cuda_v})" if name != "cpu" else f"cpu (torch {torch_v})"


class GpuMemory:
    """Peak GPU memory in use while it runs, sampled from ``nvidia-smi`` (MiB), if there is one."""

    def __init__(self) -> None:
        self.peak_mib: int | None = None
        self.total_mib: int | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _sample(self) -> None:
        exe = shutil.which("nvidia-smi")
        assert exe is not None
        while not self._stop.is_set():
            try:
                out = subprocess.run(
                    [exe, "--query-gpu=memory.used,memory.total", "--format=csv,noheader,nounits"],
                    capture_output=True,
                    text=True,
                    timeout=10,
                    check=True,
                ).stdout.splitlines()[0]
                used, total = (int(v.strip()) for v in out.split(","))
            except (subprocess.SubprocessError, OSError, ValueError, IndexError):
                return
            self.peak_mib = max(self.peak_mib or 0, used)
            self.total_mib = total
            self._stop.wait(0.25)

    def __enter__(self) -> GpuMemory:
        if shutil.which("nvidia-smi"):
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(15)


def sd_job(ckpt: str, size: int, steps: int, seed: int) -> dict[str, Any]:
    return {"workflow": workflows.sd15(ckpt, seed=seed, steps=steps, size=size)}


def images(doc: dict[str, Any]) -> int:
    return len((doc.get("output") or {}).get("images") or [])


def verdict(args: argparse.Namespace, within: bool, good: bool = True) -> bool | None:
    """A timed check's verdict: it failed if it did not work; its time target is judged on a
    GPU only (None: a smoke run checks that things work, not how fast)."""
    if not good:
        return False
    return None if args.cpu_smoke else within


def plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def mark(ok: bool | None) -> str:
    return "-" if ok is None else ("ok" if ok else "**FAIL**")


def table(device: str, rows: list[Row]) -> str:
    lines = [
        "| check | target | measured | |",
        "|---|---|---|---|",
        f"| device | - | {device} | |",
    ]
    lines += [f"| {r.check} | {r.target} | {r.measured} | {mark(r.ok)} |" for r in rows]
    return "\n".join(lines)


def checks(
    base: str, started: float, server: subprocess.Popen[bytes], args: argparse.Namespace
) -> list[Row]:
    rows: list[Row] = []
    up = wait_for(f"{base}/healthz", 60, server)
    if up is None:
        return [Row("service up (`/healthz` 200)", "< 60 s", "never answered", False)]
    took = statistics.median(request(f"{base}/healthz")[2] for _ in range(5))
    rows.append(Row("service up: process start -> `/healthz` 200", "-", f"{up:.2f} s", None))
    rows.append(
        Row("`/healthz` latency (median of 5)", "< 100 ms", ms(took), verdict(args, took < 0.1))
    )
    ready = wait_for(f"{base}/ready", args.ready_timeout, server)
    if ready is None:
        return [*rows, Row("cold start: `/ready` 200", "< 120 s", "never ready", False)]
    cold = time.monotonic() - started
    rows.append(
        Row(
            "cold start: process start -> `/ready` 200",
            "< 120 s",
            f"{cold:.1f} s",
            verdict(args, cold < 120),
        )
    )

    size, steps = args.sd_size, args.sd_steps
    for n, label in ((1, "first, model load included"), (2, "warm")):
        status, doc, took = request(
            f"{base}/predict?inline=1", sd_job(args.ckpt, size, steps, n), timeout_s=300
        )
        good = status == 200 and doc.get("status") == "succeeded" and images(doc) > 0
        execution = (doc.get("timings") or {}).get("execution_s")
        what = f"{took:.2f} s (execution {execution} s)" if good else f"{status} {_error(doc)}"
        rows.append(
            Row(
                f"SD1.5 {size}x{size}, {plural(steps, 'step')}, `/predict` ({label})",
                "< 30 s",
                what,
                verdict(args, took < 30, bool(good)),
            )
        )
        if n == 1:
            first = time.monotonic() - started
            rows.append(
                Row(
                    "process start -> first image",
                    "-",
                    f"{first:.1f} s" if good else "no image",
                    None if good else False,
                )
            )

    rows += big_and_busy(base, server, args)
    return rows


def big_and_busy(base: str, server: subprocess.Popen[bytes], args: argparse.Namespace) -> list[Row]:
    """The large job, and a second request while it runs."""
    size, steps = args.big_size, args.big_steps
    answer: list[Answer] = []
    job = sd_job(args.ckpt, size, steps, 7)

    def post() -> None:
        answer.append(request(f"{base}/predict", job, timeout_s=args.big_timeout))

    thread = threading.Thread(target=post, daemon=True)
    with GpuMemory() as gpu:
        thread.start()
        deadline = time.monotonic() + 60
        running = False
        while time.monotonic() < deadline and thread.is_alive():
            _, health, _ = request(f"{base}/v2/gpu-check/health", timeout_s=10)
            if (health.get("jobs") or {}).get("inProgress"):
                running = True
                break
            time.sleep(0.05)
        second: Answer = (0, {}, 0.0)
        if running:
            second = request(f"{base}/predict", {"workflow": workflows.model_free()})
        thread.join(args.big_timeout + 10)
    rows = []
    busy_ok = running and second[0] == 429
    rows.append(
        Row(
            "a second request while one runs",
            "429 + `Retry-After`",
            f"{second[0]} in {ms(second[2])}" if running else "the job never ran",
            busy_ok,
        )
    )
    status, doc, took = answer[0] if answer else (0, {}, 0.0)
    good = status == 200 and doc.get("status") == "succeeded" and bool(doc.get("outputs"))
    still = server.poll() is None and request(f"{base}/ready")[0] == 200
    memory = ""
    if gpu.peak_mib is not None:
        memory = f"; GPU memory peak {gpu.peak_mib} of {gpu.total_mib} MiB"
    elif server.poll() is None:
        memory = f"; peak RSS {peak_rss_mib(server.pid):.0f} MiB"
    what = f"{took:.1f} s, {doc.get('status')}{memory}" if good else f"{status} {_error(doc)}"
    rows.append(
        Row(
            f"SD1.5 {size}x{size}, {plural(steps, 'step')}: no OOM",
            "succeeds, still ready",
            what,
            good and still,
        )
    )
    return rows


def _error(doc: dict[str, Any]) -> str:
    error = doc.get("error") or {}
    if isinstance(error, dict):
        return f"{error.get('type')}: {str(error.get('message'))[:120]}"
    return str(error)[:120]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cpu-smoke", action="store_true", help="CPU, tiny sizes (no GPU)")
    parser.add_argument("--sd-size", type=int, help="SD1.5 job size (default 512; smoke 64)")
    parser.add_argument("--sd-steps", type=int, help="its steps (default 20; smoke 2)")
    parser.add_argument("--big-size", type=int, help="the large job (default 2048; smoke 128)")
    parser.add_argument("--big-steps", type=int, help="its steps (default 4; smoke 1)")
    parser.add_argument("--big-timeout", type=float, default=300.0, help="seconds for it")
    parser.add_argument("--ready-timeout", type=float, default=180.0, help="seconds for /ready")
    parser.add_argument("--markdown", type=Path, help="also write the table here")
    args = parser.parse_args(argv)
    smoke = args.cpu_smoke
    for name, full, tiny in (
        ("sd_size", 512, 64),
        ("sd_steps", 20, 2),
        ("big_size", 2048, 128),
        ("big_steps", 4, 1),
    ):
        if getattr(args, name) is None:
            setattr(args, name, tiny if smoke else full)
    comfyui = os.environ.get("COMFYUI_DIR")
    if not comfyui:
        print("set COMFYUI_DIR to a ComfyUI checkout", file=sys.stderr)
        return 2
    began = time.monotonic()
    checkpoint = sd15.ensure(Path(comfyui))  # generated once (about a minute on 2 cores)
    args.ckpt = checkpoint.name
    device = device_name(smoke)
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as tmp:
        logs = Path(tmp)
        local = stack.start(logs)
        server = None
        try:
            port = emulators.free_port()
            env = {
                **server_env(port, logs / "work", comfyui, local),
                "COMFYUI_DEVICE": "cpu" if smoke else "cuda",
                "MODELS_DIR": str(checkpoint.parent.parent),
                "JOB_TIMEOUT_S": str(int(args.big_timeout)),
                "LOG_LEVEL": "WARNING",
            }
            base, server, started = spawn(port, env, logs / "server.log")
            rows = checks(base, started, server, args)
        finally:
            if server is not None:
                server.terminate()
                server.wait(15)
            local.stop()
        ok = all(r.ok is not False for r in rows)
        if not ok:
            sys.stderr.write((logs / "server.log").read_text(errors="replace")[-4000:])
    text = table(device, rows)
    if smoke:
        text += "\n\n(`--cpu-smoke`: tiny sizes on CPU; the time targets are a GPU's, not judged)"
    print(text)
    print(
        f"\n{'all checks passed' if ok else 'SOME CHECKS FAILED'}; "
        f"the whole run took {time.monotonic() - began:.0f} s"
    )
    if args.markdown:
        args.markdown.write_text(text + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
