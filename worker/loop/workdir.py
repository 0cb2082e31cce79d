"""One worker, one working directory: each process takes a slot of ``WORK_DIR`` for itself.

Several workers on one host (a multi-GPU VM, a local run) share ``WORK_DIR`` when it is left at
its default. ComfyUI writes every job's files into one output folder and the worker sweeps it,
so two processes on one folder took each other's images. Each process takes the first free
slot ``WORK_DIR/worker-<n>`` under an exclusive ``flock`` held for its lifetime; a slot whose
owner died (any way: the kernel drops the lock) is emptied and reused, so disk use stays bounded
by the number of workers alive. Model downloads (``MODEL_CACHE_DIR``, default
``WORK_DIR/models``) stay shared.
"""

from __future__ import annotations

import errno
import fcntl
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from worker.errors import ConfigError

LOCK_NAME = ".lock"
MAX_SLOTS = 256


@dataclass
class Slot:
    path: Path
    fd: int  # the locked file: the lock lasts as long as it is open

    def release(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def claim(work_dir: Path) -> Slot:
    """Lock and return the first free slot under ``work_dir``, emptied of a dead owner's files."""
    try:
        work_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"WORK_DIR={work_dir} can't be created: {exc.strerror}") from exc
    for n in range(MAX_SLOTS):
        path = work_dir / f"worker-{n}"
        path.mkdir(exist_ok=True)
        fd = os.open(path / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                continue  # a live worker holds it
            raise
        _empty(path)
        return Slot(path, fd)
    raise ConfigError(f"WORK_DIR={work_dir}: all {MAX_SLOTS} worker slots are in use")


def _empty(path: Path) -> None:
    for entry in path.iterdir():
        if entry.name == LOCK_NAME:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
