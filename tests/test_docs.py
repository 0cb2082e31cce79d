"""The docs stay true: the configuration reference is generated from the declarations in
worker/config.py and is current, config reads only declared variables, and only config reads the
environment."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from worker import configdoc, configspec
from worker.config import Settings

REPO = Path(__file__).resolve().parent.parent
REFERENCE = REPO / "docs" / "configuration.md"


class Recording(Mapping[str, str]):
    """An environment that remembers every variable asked for."""

    def __init__(self, values: Mapping[str, str]) -> None:
        self._values = dict(values)
        self.asked: set[str] = set()

    def __getitem__(self, name: str) -> str:
        self.asked.add(name)
        return self._values[name]

    def __contains__(self, name: object) -> bool:
        if isinstance(name, str):
            self.asked.add(name)
        return name in self._values

    def get(self, name: str, default: str | None = None) -> str | None:  # type: ignore[override]
        self.asked.add(name)
        return self._values.get(name, default)

    def __iter__(self) -> Iterator[str]:
        raise AssertionError("Settings must ask for its variables by name, not list them all")

    def __len__(self) -> int:
        return len(self._values)


def declared() -> set[str]:
    return {name for _, s in configspec.walk(Settings) for name in s.names}


@pytest.mark.parametrize(
    "values",
    [{}, {"GOOGLE_CLOUD_PROJECT": "p", "RESULTS_TOPIC": "r", "RUN_JOB": "j", "REGION": "x"}],
)
def test_config_reads_exactly_the_declared_variables(values: dict[str, str]) -> None:
    env = Recording(values)
    Settings.from_env(env)
    assert len(declared()) > 80  # the walk still finds them
    assert env.asked == declared()


def test_the_configuration_reference_is_current() -> None:
    assert REFERENCE.read_text() == configdoc.render(), (
        "docs/configuration.md is stale: run `.venv/bin/python -m worker.configdoc` to "
        "regenerate it from worker/config.py"
    )


def test_the_reference_documents_every_variable_with_its_default() -> None:
    text = REFERENCE.read_text()
    assert [n for n in sorted(declared()) if f"`{n}`" not in text] == []
    assert "| `JOB_TIMEOUT_S` | number, 1 to 86400 | `1800` |" in text
    assert "| `MAX_INPUT_BYTES` | integer, at least 1 | `104857600` (100 MiB) |" in text
    assert "| `COMFYUI_DEVICE` | `auto`, `cuda` or `cpu` | `auto` |" in text


def test_the_generator_checks_and_prints(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stale = tmp_path / "configuration.md"
    stale.write_text("old\n")
    assert configdoc.main(["--check", "-o", str(stale)]) == 1
    assert "python -m worker.configdoc" in capsys.readouterr().err
    assert configdoc.main(["-o", str(stale)]) == 0
    assert configdoc.main(["--check", "-o", str(stale)]) == 0
    assert configdoc.main(["-o", "-"]) == 0
    assert capsys.readouterr().out.endswith(stale.read_text())


def _required_in_code() -> set[str]:
    """Every variable named in a ``settings.require(...)`` call in worker/ or main.py."""
    names: set[str] = set()
    for p in [*(REPO / "worker").rglob("*.py"), REPO / "main.py"]:
        source = p.read_text()
        for start in (m.end() for m in re.finditer(r"\.require\(", source)):
            depth, end = 1, start
            while depth:
                depth += {"(": 1, ")": -1}.get(source[end], 0)
                end += 1
            names.update(re.findall(r"\"([A-Z][A-Z0-9_]+)\"", source[start:end]))
    return names


def test_every_required_variable_is_declared_required() -> None:
    required = {s.env for _, s in configspec.walk(Settings) if s.required}
    in_code = _required_in_code()
    assert "OUTPUT_URI" in in_code  # the scan still finds the calls
    assert sorted(in_code - required) == []


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
