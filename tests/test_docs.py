"""The docs stay true: every variable the worker reads is documented in docs/configuration.md."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def variables_read_by_config() -> set[str]:
    source = (REPO / "worker" / "config.py").read_text()
    # Every reader call takes the variable's name as a string literal: r.int("MAX_JOBS", ...),
    # _resource(r, "RESULTS_TOPIC", ...), path("COMFYUI_DIR").
    return set(re.findall(r"\((?:\s*r,)?\s*\"([A-Z][A-Z0-9_]{2,})\"", source))


def test_config_is_the_only_reader_of_the_environment() -> None:
    offenders = [
        str(p.relative_to(REPO))
        for p in (REPO / "worker").rglob("*.py")
        if p.name not in ("config.py", "cli.py")  # cli.py hands os.environ to Settings, once
        and re.search(r"os\.environ|os\.getenv", p.read_text())
        and "worker/local/" not in str(p)  # the local run starts emulators for a child process
    ]
    assert offenders == []


def test_nothing_in_the_worker_writes_the_environment() -> None:
    # Children (the local run's worker, emulators) get their environment spelled out instead.
    writes = re.compile(
        r"os\.environ\[[^]]+\]\s*=|os\.environ\.(update|setdefault|pop)\(|os\.putenv"
    )
    offenders = [
        str(p.relative_to(REPO))
        for p in (REPO / "worker").rglob("*.py")
        if writes.search(p.read_text())
    ]
    assert offenders == []


def test_every_variable_is_documented() -> None:
    reference = (REPO / "docs" / "configuration.md").read_text()
    names = variables_read_by_config()
    assert len(names) > 20  # the pattern still finds them
    missing = sorted(n for n in names if f"`{n}`" not in reference)
    assert missing == [], f"document these in docs/configuration.md: {missing}"
