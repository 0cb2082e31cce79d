"""Drive ``scripts/local-run --keep``'s playground (``python -m worker.local.demo --keep``) the way
a user does: start it, read its ``export`` lines, send jobs from "a second shell", press Ctrl-C."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.cloud import REPO

EXPORT = re.compile(r"^\s*export (\w+)=(\S+)$", re.MULTILINE)


@dataclass
class Playground:
    process: subprocess.Popen[bytes]
    out: Path
    exports: dict[str, str]

    def shell(self, *args: str | Path, timeout_s: float = 60) -> subprocess.CompletedProcess[str]:
        """``python -m worker ARGS`` from a second shell: PATH and the like, plus the exports."""
        env = {k: v for k, v in os.environ.items() if not k.endswith("_EMULATOR_HOST")}
        return subprocess.run(
            [sys.executable, "-m", "worker", *map(str, args)],
            cwd=REPO,
            env=env | self.exports | {"PYTHONPATH": str(REPO)},
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )

    def text(self) -> str:
        return self.out.read_text(errors="replace")


def _wait_for(what: str, play: Playground, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while what not in play.text():
        assert play.process.poll() is None, f"the playground exited:\n{play.text()}"
        assert time.monotonic() < deadline, f"no {what!r} after {timeout_s} s:\n{play.text()}"
        time.sleep(0.1)


def _processes_naming(needle: str) -> list[str]:
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue  # gone meanwhile
        if needle in args:
            found.append(args)
    return found


@contextmanager
def playground(
    tmp_path: Path, comfyui_dir: Path, ready_s: float = 60, **env: Any
) -> Iterator[Playground]:
    """The playground until the block ends; then Ctrl-C, and it must stop cleanly: exit 0, its
    worker and both emulators gone, its env file removed."""
    out = tmp_path / "playground.out"
    full = {**os.environ, **{k: str(v) for k, v in env.items()}, "PYTHONPATH": str(REPO)}
    argv = [sys.executable, "-m", "worker.local.demo", "--keep", "--comfyui-dir", str(comfyui_dir)]
    argv += ["--python", sys.executable, "--state", str(tmp_path / "state")]
    with out.open("wb") as sink:
        process = subprocess.Popen(argv, cwd=REPO, env=full, stdout=sink, stderr=subprocess.STDOUT)
    play = Playground(process, out, {})
    try:
        _wait_for("worker ready", play, ready_s)
        play.exports = dict(EXPORT.findall(play.text()))
        yield play
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
        try:
            code = process.wait(40)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
    assert code == 0, play.text()
    assert "stopped the emulators" in play.text()
    assert not (tmp_path / "state" / "playground.env").exists()
    pubsub_port = play.exports["PUBSUB_EMULATOR_HOST"].rsplit(":", 1)[1]
    gcs_port = play.exports["STORAGE_EMULATOR_HOST"].rsplit(":", 1)[1]
    deadline = time.monotonic() + 10  # a JVM takes a moment to go
    while left := _processes_naming(f"--port={pubsub_port}") + _processes_naming(
        f"-port {gcs_port} "
    ):
        assert time.monotonic() < deadline, f"still running: {left}"
        time.sleep(0.2)
    worker = re.search(r"a worker starting \(pid (\d+)", play.text())
    assert worker is not None and not Path(f"/proc/{worker[1]}").exists()
    assert "worker.exit" in (tmp_path / "state" / "logs" / "worker.log").read_text()
