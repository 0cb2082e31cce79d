"""What crosses between the worker's process and its executor process (``worker.executor.process``).

Messages are pickled tuples over a local socket pair, both ends this package's own code. Errors
cross as ``(class name, args, attributes)`` and are rebuilt as the same class: pickle would call
``JobFailed(message)`` and lose its keyword-only fields. Only ``worker.errors`` classes cross;
anything else was already a ``WorkerBroken`` in the child (as ``ComfyExecutor`` turns any other
exception into one).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from worker import errors
from worker.config import Settings
from worker.message.bounded import safe_str


@dataclasses.dataclass(frozen=True)
class Hello:
    """The child's first message: the settings the worker runs with, its import path (so that
    ``EXECUTOR`` can name a module the worker's process can import) and the fields its log lines
    carry (``worker.obs.logs.static``: a job worker's task, an HTTP service's name)."""

    settings: Settings
    sys_path: tuple[str, ...]
    log_static: Mapping[str, Any]


class RemoteError(Exception):
    """The child's answer was an error: ``error`` is it, rebuilt."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(str(error))
        self.error = error


def encode(exc: BaseException) -> tuple[str, tuple[Any, ...], dict[str, Any]]:
    cls = type(exc)
    if isinstance(exc, errors.WorkerError) and getattr(errors, cls.__name__, None) is cls:
        return cls.__name__, tuple(exc.args), dict(vars(exc))
    message = f"unexpected {cls.__name__} in the executor: {safe_str(exc, 1000)}"
    return "WorkerBroken", (message,), {}


def rebuild(body: tuple[str, tuple[Any, ...], dict[str, Any]]) -> BaseException:
    name, args, state = body
    cls = getattr(errors, name, None)
    if not (isinstance(cls, type) and issubclass(cls, errors.WorkerError)):
        return errors.WorkerBroken(f"the executor sent an unknown error {name!r}: {args!r}")
    exc = cls.__new__(cls)
    exc.args = args
    vars(exc).update(state)
    return exc
