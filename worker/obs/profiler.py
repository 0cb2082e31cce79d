"""Optional Cloud Profiler (``PROFILER=1``): CPU profiles of every thread, by service and version.

Google's agent (PyPI ``google-cloud-profiler`` 4.1.0) ships no wheel: it compiles a C++ extension
at install time, so the image's build stage needs ``g++`` and ``python3-dev``. Built that way it
works on Python 3.11 and 3.12 (checked: its CPU profiler samples the main and worker threads on
both). Its wall-time profiler is left off: it samples only the main thread with ``SIGALRM``, and
the worker's main thread only waits; the executor, prefetch and finisher threads are where the
time goes, and the CPU profiler sees them.
"""

from __future__ import annotations

import logging

from worker.config import Identity, ObservabilitySettings
from worker.errors import ConfigError
from worker.obs import logs

log = logging.getLogger(__name__)

MISSING = (
    "PROFILER=1 needs the Cloud Profiler agent: pip install google-cloud-profiler==4.1.0 (it "
    "compiles a C++ extension: install g++ and python3-dev first), or unset PROFILER"
)


def start(obs: ObservabilitySettings, identity: Identity) -> bool:
    """Start the agent's background thread when ``PROFILER=1``; True when it runs.

    A missing agent is a configuration error (exit 78); an agent that can't start (no project
    or credentials) logs ``profiler.unavailable`` and the worker goes on without it.
    """
    if not obs.profiler:
        return False
    try:
        import googlecloudprofiler
    except ImportError as exc:
        raise ConfigError(f"{MISSING} ({exc})") from exc
    service = obs.service_name(identity)
    try:
        googlecloudprofiler.start(
            service=service,
            service_version=obs.service_version,
            disable_wall_profiling=True,
            verbose=1,
        )
    except Exception as exc:  # the agent raises ValueError, NotImplementedError, auth errors
        logs.event(
            log,
            "profiler.unavailable",
            logging.WARNING,
            error=f"{type(exc).__name__}: {exc}",
            service=service,
        )
        return False
    logs.event(log, "profiler.started", service=service, version=obs.service_version)
    return True
