"""``EXECUTOR`` and ``EXECUTOR_PROCESS``: which executor a command gets, and where it runs."""

from __future__ import annotations

import importlib
import importlib.util
from typing import cast

from worker.config import Settings
from worker.errors import ConfigError
from worker.executor.base import Executor


def load(settings: Settings) -> Executor:
    """The executor the settings name, in a child process unless ``EXECUTOR_PROCESS`` is off."""
    if not settings.executor_process:
        return build(settings)
    module_name = settings.executor.partition(":")[0]
    try:  # a wrong name fails here, not in the child's start-up; importing it is the child's
        found = importlib.util.find_spec(module_name) is not None
    except (ImportError, ValueError) as exc:
        raise ConfigError(f"EXECUTOR={settings.executor!r} can't be loaded: {exc}") from exc
    if not found:
        raise ConfigError(f"EXECUTOR={settings.executor!r}: no module named {module_name!r}")
    from worker.executor.process import ProcessExecutor

    return ProcessExecutor(settings)


def build(settings: Settings) -> Executor:
    """``EXECUTOR``'s ``module:function`` called with the settings, in this process."""
    module_name, _, attr = settings.executor.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), attr or "build_executor")
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"EXECUTOR={settings.executor!r} can't be loaded: {exc}") from exc
    return cast(Executor, factory(settings))
