"""HTTP mode served for real: ``functions-framework --target=app`` (gunicorn) in a child process,
with the Pub/Sub emulator, fake-gcs-server and the scripted executor behind it.

One server per module (booting is ~1-2 s); tests use their own job ids. ``Server.log`` is the
server's whole output (its JSON lines), for tests that check what is (not) logged.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.cloud import REPO, Cloud
from worker.local import emulators

KEY = "test-key-" + "k" * 24


@dataclass
class Server:
    base: str
    process: subprocess.Popen[bytes]
    log: Path
    cloud: Cloud

    def url(self, path: str) -> str:
        return f"{self.base}{path}"

    def get(self, path: str, key: str | None = KEY, **kw: Any) -> requests.Response:
        headers = {**_auth(key), **kw.pop("headers", {})}
        return requests.get(self.url(path), headers=headers, timeout=kw.pop("timeout", 60), **kw)

    def post(
        self, path: str, body: Any = None, key: str | None = KEY, **kw: Any
    ) -> requests.Response:
        headers = {**_auth(key), **kw.pop("headers", {})}
        timeout = kw.pop("timeout", 60)
        if body is None or isinstance(body, bytes):
            return requests.post(self.url(path), data=body, headers=headers, timeout=timeout, **kw)
        return requests.post(self.url(path), json=body, headers=headers, timeout=timeout, **kw)

    def logs(self) -> str:
        return self.log.read_text(errors="replace")


def _auth(key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"} if key else {}


def serve(cloud: Cloud, log: Path, **env: Any) -> Server:
    port = emulators.free_port()
    full = {
        **os.environ,
        **cloud.env(JOBS_TOPIC=cloud.jobs_topic, **env),
        "PORT": str(port),
        "PYTHONPATH": str(REPO),
    }
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "functions_framework", "--target=app", "--source=main.py",
             f"--port={port}", "--host=127.0.0.1"],
            cwd=REPO, env=full, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    server = Server(f"http://127.0.0.1:{port}", process, log, cloud)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, server.logs()[-3000:]
        try:
            if requests.get(server.url("/ready"), timeout=5).status_code == 200:
                return server
        except requests.ConnectionError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"the server never got ready:\n{server.logs()[-3000:]}")


def stop(server: Server) -> None:
    if server.process.poll() is None:
        server.process.terminate()
        try:
            server.process.wait(10)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait(5)


@pytest.fixture(scope="module")
def module_cloud(
    pubsub_emulator: emulators.Emulator,
    gcs_emulator: emulators.Emulator,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Cloud]:
    c = Cloud.create(
        suffix=uuid.uuid4().hex[:10],
        work_dir=tmp_path_factory.mktemp("http-work"),
        pubsub_host=pubsub_emulator.host,
        gcs_url=f"http://{gcs_emulator.host}",
    )
    try:
        yield c
    finally:
        c.close()


@pytest.fixture(scope="module")
def server(module_cloud: Cloud, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """Executes jobs here; API keys from a file; short job timeout and cancel interval."""
    tmp = tmp_path_factory.mktemp("http-server")
    keys = tmp / "keys"
    keys.write_text(f"# rotated keys, one per line\n{KEY}\n\nsecond-key-{'s' * 20}\n")
    s = serve(
        module_cloud,
        tmp / "server.log",
        API_KEYS_FILE=keys,
        JOB_TIMEOUT_S=4,
        CANCEL_CHECK_S=0.5,
        INLINE_MAX_BYTES=5000,
    )
    try:
        yield s
    finally:
        stop(s)
