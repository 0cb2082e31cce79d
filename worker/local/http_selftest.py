"""``python main.py --test``: serve the HTTP app locally, with the emulators, and check it.

1. Start the Pub/Sub emulator and fake-gcs-server; create the topics, the job subscription and
   the bucket (``worker.local.stack``).
2. Serve ``main.py`` with ``functions-framework --target=app`` on a free port, as the image does.
3. ``GET /healthz``: 200, and how long it took.
4. With ``COMFYUI_DIR`` set (real ComfyUI, on CPU here): wait for ``GET /ready`` (process start to
   ready: the cold start), then ``POST /predict`` the model-free ``demo-invert`` pipeline at
   512x512 and check its result. Without it the app runs as a gateway (``HTTP_EXECUTE=false``).
5. Stop everything. Exit 0 when every check passed.

A developer tool: options from the command line only.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from worker.local import emulators, stack
from worker.local.stack import Stack

REPO = Path(__file__).resolve().parents[2]


Answer = tuple[int, dict[str, Any], float]


def request(url: str, body: Any = None, timeout_s: float = 120) -> Answer:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method="POST" if data else "GET")
    req.add_header("Content-Type", "application/json")
    started = time.monotonic()
    try:
        with urllib.request.urlopen(req, timeout=timeout_s) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    except OSError:
        return 0, {}, time.monotonic() - started
    try:
        doc = json.loads(raw)
    except ValueError:
        doc = {"raw": raw[:200].decode(errors="replace")}
    return status, doc if isinstance(doc, dict) else {"doc": doc}, time.monotonic() - started


def wait_for(url: str, timeout_s: float, server: subprocess.Popen[bytes]) -> float | None:
    started = time.monotonic()
    while time.monotonic() - started < timeout_s and server.poll() is None:
        status, _, _ = request(url, timeout_s=5)
        if status == 200:
            return time.monotonic() - started
        time.sleep(0.1)
    return None


def server_env(port: int, work: Path, comfyui_dir: str | None, local: Stack) -> dict[str, str]:
    env = {
        **os.environ,
        **local.exports(),
        "PORT": str(port),
        "OUTPUT_URI": f"gs://{stack.BUCKET}/http",
        "WORK_DIR": str(work),
        "PYTHONPATH": str(REPO),
    }
    if comfyui_dir:
        env.update(COMFYUI_DIR=comfyui_dir, COMFYUI_DEVICE=env.get("COMFYUI_DEVICE", "cpu"))
    else:
        env["HTTP_EXECUTE"] = "false"
    return env


def spawn(port: int, env: dict[str, str], log: Path) -> tuple[str, subprocess.Popen[bytes], float]:
    """``main.py`` served by functions-framework on ``port``, as the image serves it: the base
    URL, the process (its output to ``log``) and when it was started (``time.monotonic``)."""
    started = time.monotonic()
    with log.open("wb") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "functions_framework", "--target=app", "--source=main.py",
             f"--port={port}", "--host=127.0.0.1"],
            cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    return f"http://127.0.0.1:{port}", server, started


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python main.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--test", action="store_true", required=True, help="run the self-test")
    parser.add_argument("--ready-timeout", type=float, default=300.0, help="seconds for /ready")
    args = parser.parse_args(argv)
    comfyui_dir = os.environ.get("COMFYUI_DIR")
    with tempfile.TemporaryDirectory(prefix="http-selftest-") as tmp:
        logs = Path(tmp)
        local = stack.start(logs)
        server = None
        try:
            port = emulators.free_port()
            env = server_env(port, logs / "work", comfyui_dir, local)
            base, server, started = spawn(port, env, logs / "server.log")
            ok = checks(base, started, server, comfyui_dir, args)
        finally:
            if server is not None:
                server.terminate()
                server.wait(10)
            local.stop()
        if not ok:
            sys.stderr.write((logs / "server.log").read_text(errors="replace")[-4000:])
    return 0 if ok else 1


def checks(
    base: str,
    started: float,
    server: subprocess.Popen[bytes],
    comfyui_dir: str | None,
    args: argparse.Namespace,
) -> bool:
    up = wait_for(f"{base}/healthz", 60, server)
    if up is None:
        print("FAIL /healthz never answered 200")
        return False
    status, doc, took = request(f"{base}/healthz")
    print(f"ok   /healthz {status} in {took * 1000:.1f} ms (server up {up:.1f} s after start)")
    if status != 200:
        return False
    if not comfyui_dir:
        print("skip /ready and /predict: COMFYUI_DIR is not set (served as a gateway)")
        return True
    ready = wait_for(f"{base}/ready", args.ready_timeout, server)
    if ready is None:
        print(f"FAIL /ready not 200 within {args.ready_timeout:.0f} s")
        return False
    cold = time.monotonic() - started
    print(f"ok   /ready 200: cold start {cold:.1f} s (process start to ready)")
    job = {"pipeline": "demo-invert", "params": {"width": 512, "height": 512}}
    status, doc, took = request(f"{base}/predict?inline=1", job)
    images = (doc.get("output") or {}).get("images") or []
    good = status == 200 and doc.get("status") == "succeeded" and images
    print(
        f"{'ok  ' if good else 'FAIL'} /predict {status} {doc.get('status')} in {took:.2f} s "
        f"(execution {(doc.get('timings') or {}).get('execution_s')} s, "
        f"{len(images)} image(s) inline)"
    )
    return bool(good)
