"""Building a model fetcher the way ``python -m worker run`` does, on test hosts and caches."""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from tests.modelhost import Certs
from worker.config import Limits
from worker.message.job import ModelSpec
from worker.models.cache import ModelCache
from worker.models.fetch import Downloader, ModelFetcher
from worker.models.https import HttpsPolicy
from worker.models.netpolicy import AddressPolicy, Resolver, system_resolver
from worker.models.tokens import HostTokens

KiB = 1024
NEVER = threading.Event()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def blob(size: int, seed: int = 0) -> bytes:
    return hashlib.sha256(str(seed).encode()).digest() * (size // 32) + os.urandom(size % 32)


def fetcher(
    cache_dir: Path,
    certs: Certs,
    hosts: tuple[str, ...] = (),
    *,
    cache_bytes: int = 10**9,
    resolve: Resolver = system_resolver,
    networks: tuple[str, ...] = ("127.0.0.1/32",),
    tokens: dict[str, str] | None = None,
    chunk: int = 64 * KiB,
    retry_s: float = 1.0,
    read_timeout_s: float = 5.0,
    fetch_timeout_s: float = 60.0,
    wait_s: float = 5.0,
    clock: Callable[[], float] = time.time,
    **limits: Any,
) -> ModelFetcher:
    policy = HttpsPolicy(
        hosts,
        AddressPolicy.of(networks, resolve),
        HostTokens(tokens),
        certs.client_context(),
        read_timeout_s=read_timeout_s,
        chunk_bytes=chunk,
        workers=4,
    )
    base = Limits(allowed_model_hosts=hosts, allowed_model_buckets=("*",))
    return ModelFetcher(
        ModelCache(cache_dir, cache_bytes, clock),
        Downloader(policy, chunk, 4),
        replace(base, **limits),
        retry_s=retry_s,
        fetch_timeout_s=fetch_timeout_s,
        wait_s=wait_s,
    )


def spec(uri: str, data: bytes | None = None, name: str = "x.safetensors", **kw: Any) -> ModelSpec:
    digest = kw.pop("sha256", sha(data) if data is not None else None)
    return ModelSpec(uri, kw.pop("folder", "loras"), name, digest)
