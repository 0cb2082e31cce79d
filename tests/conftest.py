"""Shared fixtures: the real Pub/Sub emulator and fake-gcs-server, fresh resources per test.

The emulators start once per session (about 2 s); every test gets its own topics, subscriptions
and bucket (``cloud`` fixture), so tests never see each other's messages or objects.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cloud import Cloud
from tests.modelhost import Certs, ModelHost, make_certs
from worker.local import emulators


@pytest.fixture(scope="session")
def emulator_logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("emulator-logs")


@pytest.fixture(scope="session")
def pubsub_emulator(emulator_logs: Path) -> Iterator[emulators.Emulator]:
    emulator = emulators.start_pubsub(emulator_logs)
    os.environ["PUBSUB_EMULATOR_HOST"] = emulator.host
    try:
        yield emulator
    finally:
        emulator.stop()
        os.environ.pop("PUBSUB_EMULATOR_HOST", None)


@pytest.fixture(scope="session")
def gcs_emulator(emulator_logs: Path) -> Iterator[emulators.Emulator]:
    emulator = emulators.start_gcs(emulator_logs)
    os.environ["STORAGE_EMULATOR_HOST"] = f"http://{emulator.host}"
    try:
        yield emulator
    finally:
        emulator.stop()
        os.environ.pop("STORAGE_EMULATOR_HOST", None)


@pytest.fixture
def cloud(
    pubsub_emulator: emulators.Emulator, gcs_emulator: emulators.Emulator, tmp_path: Path
) -> Iterator[Cloud]:
    """Fresh topics (jobs, results, dead letters), a dead-lettered subscription and a bucket."""
    c = Cloud.create(
        suffix=uuid.uuid4().hex[:10],
        work_dir=tmp_path / "work",
        pubsub_host=pubsub_emulator.host,
        gcs_url=f"http://{gcs_emulator.host}",
    )
    try:
        yield c
    finally:
        c.close()


@pytest.fixture(scope="session")
def model_certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    """A self-signed CA and a server certificate for localhost, 127.0.0.1 and 127.0.0.2."""
    return make_certs(tmp_path_factory.mktemp("model-certs"))


@pytest.fixture
def model_host(model_certs: Certs) -> Iterator[ModelHost]:
    """A local HTTPS model host on 127.0.0.1 (files, redirects, tokens, faults)."""
    host = ModelHost(model_certs).start()
    try:
        yield host
    finally:
        host.stop()
