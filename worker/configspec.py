"""Settings declared once: a settings dataclass's field says, in one call, everything about its
variable (name, kind, default, bounds, when it is required, help).

``integer("MAX_JOBS", 0, help=...)`` returns a ``dataclasses.field`` whose metadata holds a
``Setting``; that one declaration drives ``read`` (and so ``Settings.from_env``),
``Settings.require`` and the generated reference, docs/configuration.md (``worker.configdoc``).
A kind's parser turns the variable's trimmed, non-empty text into the field's value or raises
``Invalid`` with a line that names the variable and says what is allowed; ``read`` collects every
such line of every section before anything fails (a field whose text can't be parsed keeps its
default; one out of bounds keeps its value, so that checks across fields still see it).
"""

from __future__ import annotations

import dataclasses
import re
import shlex
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, overload

T = TypeVar("T")
KEY = "setting"  # the key of a field's metadata that holds its Setting
_GS_URI = re.compile(r"gs://[a-z0-9][a-z0-9._-]{1,221}[a-z0-9](/[^\s]*)?")
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


class Invalid(ValueError):
    """One problem with one variable; its message is the line ``ConfigError`` shows."""


# A declared variable's trimmed text, or None when unset (parsers that resolve short names use
# it for GOOGLE_CLOUD_PROJECT and REGION; asking for an undeclared variable is a KeyError).
Lookup = Callable[[str], str | None]
# (variable, trimmed non-empty text, lookup) -> the value, or raise Invalid.
Parse = Callable[[str, str, Lookup], Any]


@dataclass(frozen=True, kw_only=True)
class Setting:
    """One environment variable: how it is read and how the reference shows it."""

    env: str
    default: object  # as the variable is written (MODEL_CACHE_MAX_GB: in GB, not bytes)
    help: str
    kind: str  # the reference's name for what the variable holds: "integer", "gs:// URI", ...
    parse: Parse
    lo: float | None = None
    hi: float | None = None
    above: float | None = None  # an exclusive lower bound
    choices: tuple[str, ...] = ()
    required: str = ""  # when it must be set, as the reference says it: "`run`"
    default_doc: str | None = None  # a default that isn't a literal: "`<OUTPUT_URI>/_inputs`"
    also: tuple[str, ...] = ()  # read when ``env`` is unset (K_SERVICE for CLOUD_RUN_JOB)
    scale: float = 1.0  # the field holds the variable's value times this (GB -> bytes)

    @property
    def names(self) -> tuple[str, ...]:
        return (self.env, *self.also)

    def field_value(self, value: Any) -> Any:
        return value if self.scale == 1.0 else int(value * self.scale)

    def read(self, env: Mapping[str, str], lookup: Lookup, problems: list[str]) -> Any:
        raw = next((v for v in (env.get(n, "").strip() for n in self.names) if v), None)
        if raw is None:
            return self.field_value(self.default)
        try:
            value = self.parse(self.env, raw, lookup)
        except Invalid as exc:
            problems.append(str(exc))
            return self.field_value(self.default)
        problems.extend(self.out_of_bounds(value))  # the value stays: checks across fields see it
        return self.field_value(value)

    def out_of_bounds(self, value: Any) -> list[str]:
        if not isinstance(value, int | float) or isinstance(value, bool):
            return []
        out = []
        lo, hi = self.lo, self.hi
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            bound = f"between {lo} and {hi}" if hi is not None else f"at least {lo}"
            out.append(f"{self.env}={value} must be {bound}")
        if self.above is not None and value <= self.above:
            out.append(f"{self.env}={value} must be above {self.above:g}")
        return out


def declare(default: T, setting: Setting) -> T:
    """The dataclass field of ``setting``: ``default`` is the field's own default."""
    value: T = dataclasses.field(default=default, metadata={KEY: setting})
    return value


def _declare(default: T, kind: str, parse: Parse, env: str, help: str, **more: Any) -> T:
    setting = Setting(env=env, default=default, help=help, kind=kind, parse=parse, **more)
    return declare(default, setting)


# The kinds. Each returns the field; the keyword arguments past ``help`` are Setting's.


def integer(
    env: str, default: int, *, help: str, lo: int = 0, hi: int | None = None, **more: Any
) -> int:
    return _declare(default, "integer", _integer, env, help, lo=lo, hi=hi, **more)


def number(
    env: str, default: float, *, help: str, lo: float = 0.0, hi: float | None = None, **more: Any
) -> float:
    hi = None if hi is None else float(hi)  # "must be between 0.0 and 1.0" whatever was written
    return _declare(default, "number", _number, env, help, lo=float(lo), hi=hi, **more)


def scaled(env: str, default: float, *, scale: float, help: str, **more: Any) -> int:
    """A number the field keeps in smaller units, whole: MODEL_CACHE_MAX_GB in bytes."""
    setting = Setting(
        env=env, default=default, help=help, kind="number", parse=_number, scale=scale, **more
    )
    return declare(int(default * scale), setting)


def flag(env: str, default: bool, *, help: str, **more: Any) -> bool:
    return _declare(default, "true/false", _flag, env, help, **more)


def choice(env: str, default: str, choices: tuple[str, ...], *, help: str, **more: Any) -> str:
    """One of ``choices``; the text is upper- or lower-cased as the choices are written."""
    return _declare(default, "one of", _choice(choices), env, help, choices=choices, **more)


@overload
def text(
    env: str, default: str, *, help: str, pattern: str | None = None, rule: str = "", **more: Any
) -> str: ...
@overload
def text(
    env: str,
    default: None = None,
    *,
    help: str,
    pattern: str | None = None,
    rule: str = "",
    **more: Any,
) -> str | None: ...
def text(
    env: str,
    default: str | None = None,
    *,
    help: str,
    pattern: str | None = None,
    rule: str = "",
    **more: Any,
) -> str | None:
    """Free text, or text that must match ``pattern`` (else ``rule`` says what is allowed)."""
    parse = _text if pattern is None else _matching(re.compile(pattern), rule)
    return _declare(default, "text", parse, env, help, **more)


@overload
def path(env: str, default: Path, *, help: str, **more: Any) -> Path: ...
@overload
def path(env: str, default: None = None, *, help: str, **more: Any) -> Path | None: ...
def path(env: str, default: Path | None = None, *, help: str, **more: Any) -> Path | None:
    """A file or folder (not checked here: the part that uses it says what is wrong with it)."""
    return _declare(default, "path", _path, env, help, **more)


def items(
    env: str,
    *,
    help: str,
    lower: bool = False,
    valid: Callable[[str], object] | None = None,
    rule: str = "",
    **more: Any,
) -> tuple[str, ...]:
    """A comma-separated list; each item is lower-cased if asked and must satisfy ``valid``."""
    empty: tuple[str, ...] = ()
    parse = _items(lower, valid, rule)
    return _declare(empty, "comma-separated list", parse, env, help, **more)


def words(env: str, *, help: str, **more: Any) -> tuple[str, ...]:
    """Shell-quoted words: ``--reserve-vram 1 --preview-method auto``."""
    empty: tuple[str, ...] = ()
    return _declare(empty, "shell words", _words, env, help, **more)


def gs_uri(env: str, *, help: str, **more: Any) -> str | None:
    return _declare(None, "gs:// URI", _gs_uri, env, help, **more)


def gs_uri_or_path(env: str, *, help: str, **more: Any) -> str | None:
    return _declare(None, "path or gs:// URI", _gs_uri_or_path, env, help, **more)


def resource(env: str, collection: str, *, help: str, **more: Any) -> str | None:
    """``projects/P/<collection>/NAME``, or a bare ``NAME`` resolved with GOOGLE_CLOUD_PROJECT."""
    kind = collection.removesuffix("s")  # "topics" -> "topic"
    return _declare(None, kind, _resource(collection), env, help, **more)


def run_job(env: str, *, help: str, **more: Any) -> str | None:
    """``projects/P/locations/R/jobs/J``, or a bare ``J`` with GOOGLE_CLOUD_PROJECT and REGION."""
    return _declare(None, "Cloud Run job", _run_job, env, help, **more)


def endpoint(env: str, *, help: str, **more: Any) -> str | None:
    return _declare(None, "http(s):// URL", _endpoint, env, help, **more)


# The parsers: (variable, trimmed non-empty text, lookup) -> value, or raise Invalid.


def _text(name: str, raw: str, lookup: Lookup) -> str:
    return raw


def _path(name: str, raw: str, lookup: Lookup) -> Path:
    return Path(raw)


def _integer(name: str, raw: str, lookup: Lookup) -> int:
    try:
        return int(raw)
    except ValueError:
        raise Invalid(f"{name}={raw!r} is not a whole number") from None


def _number(name: str, raw: str, lookup: Lookup) -> float:
    try:
        return float(raw)
    except ValueError:
        raise Invalid(f"{name}={raw!r} is not a number") from None


def _flag(name: str, raw: str, lookup: Lookup) -> bool:
    value = raw.lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise Invalid(f"{name}={value!r} must be one of true/false/1/0/yes/no/on/off")


def _choice(choices: tuple[str, ...]) -> Parse:
    upper = all(c == c.upper() for c in choices)

    def parse(name: str, raw: str, lookup: Lookup) -> str:
        value = raw.upper() if upper else raw.lower()
        if value not in choices:
            raise Invalid(f"{name}={value!r} must be {spoken(choices)}")
        return value

    return parse


def _matching(pattern: re.Pattern[str], rule: str) -> Parse:
    def parse(name: str, raw: str, lookup: Lookup) -> str:
        if not pattern.fullmatch(raw):
            raise Invalid(f"{name}={raw!r} {rule}")
        return raw

    return parse


def _items(lower: bool, valid: Callable[[str], object] | None, rule: str) -> Parse:
    def parse(name: str, raw: str, lookup: Lookup) -> tuple[str, ...]:
        parts = tuple(p.strip() for p in raw.split(",") if p.strip())
        parts = tuple(p.lower() for p in parts) if lower else parts
        bad = [p for p in parts if valid is not None and not valid(p)]
        if bad:
            raise Invalid("\n  ".join(f"{name}: {p!r} {rule}" for p in bad))
        return parts

    return parse


def _words(name: str, raw: str, lookup: Lookup) -> tuple[str, ...]:
    try:
        return tuple(shlex.split(raw))
    except ValueError as exc:
        raise Invalid(f"{name} is not a valid shell-quoted list of flags: {exc}") from None


def _gs_uri(name: str, raw: str, lookup: Lookup) -> str:
    if not _GS_URI.fullmatch(raw):
        raise Invalid(f"{name}={raw!r} must look like gs://bucket[/path]")
    return raw.rstrip("/")


def _gs_uri_or_path(name: str, raw: str, lookup: Lookup) -> str:
    return _gs_uri(name, raw, lookup) if raw.startswith("gs://") else raw


def _resource(collection: str) -> Parse:
    def parse(name: str, raw: str, lookup: Lookup) -> str:
        wrong = f"{name}={raw!r} must be projects/PROJECT/{collection}/NAME or NAME"
        if raw.startswith("projects/"):
            if not re.fullmatch(rf"projects/[^/]+/{collection}/[^/]+", raw):
                raise Invalid(wrong)
            return raw
        if "/" in raw:
            raise Invalid(wrong)
        project = lookup("GOOGLE_CLOUD_PROJECT")
        if project is None:
            raise Invalid(f"{name}={raw!r} is a short name: set GOOGLE_CLOUD_PROJECT too")
        return f"projects/{project}/{collection}/{raw}"

    return parse


def _run_job(name: str, raw: str, lookup: Lookup) -> str:
    if raw.startswith("projects/"):
        if not re.fullmatch(r"projects/[^/]+/locations/[^/]+/jobs/[^/]+", raw):
            raise Invalid(f"{name}={raw!r} must be projects/P/locations/R/jobs/J or J")
        return raw
    project, region = lookup("GOOGLE_CLOUD_PROJECT"), lookup("REGION")
    if "/" in raw or project is None or region is None:
        raise Invalid(
            f"{name}={raw!r}: a bare job name needs GOOGLE_CLOUD_PROJECT and REGION "
            "(or give projects/P/locations/R/jobs/J)"
        )
    return f"projects/{project}/locations/{region}/jobs/{raw}"


def _endpoint(name: str, raw: str, lookup: Lookup) -> str:
    if not re.fullmatch(r"https?://[^\s/]+(/[^\s]*)?", raw):
        raise Invalid(f"{name}={raw!r} must be an http(s):// URL")
    return raw.rstrip("/")


def spoken(words: tuple[str, ...]) -> str:
    """``a, b or c``."""
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} or {words[-1]}"


# Reading and walking a tree of sections.


def setting_of(f: dataclasses.Field[Any]) -> Setting | None:
    found = f.metadata.get(KEY)
    return found if isinstance(found, Setting) else None


def section_of(f: dataclasses.Field[Any]) -> type[Any] | None:
    """The section class of a field that holds a whole section (``field(default_factory=...)``)."""
    factory: object = f.default_factory
    if isinstance(factory, type) and dataclasses.is_dataclass(factory):
        return factory
    return None


def walk(cls: type[Any], path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Setting]]:
    """Every setting under ``cls``, with the attribute path that holds its value, in order."""
    for f in dataclasses.fields(cls):
        setting, section = setting_of(f), section_of(f)
        if setting is not None:
            yield (*path, f.name), setting
        elif section is not None:
            yield from walk(section, (*path, f.name))


def read(cls: type[T], env: Mapping[str, str], problems: list[str]) -> T:
    """``cls`` with each declared field read from ``env`` (sections recursively); every problem
    is appended to ``problems``. Fields without a declaration keep their defaults."""
    declared = {name for _, s in walk(cls) for name in s.names}

    def lookup(name: str) -> str | None:
        if name not in declared:
            raise KeyError(f"{name} is not a declared setting")
        return env.get(name, "").strip() or None

    return _read(cls, env, lookup, problems)


def _read(cls: type[T], env: Mapping[str, str], lookup: Lookup, problems: list[str]) -> T:
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        setting, section = setting_of(f), section_of(f)
        if setting is not None:
            values[f.name] = setting.read(env, lookup, problems)
        elif section is not None:
            values[f.name] = _read(section, env, lookup, problems)
    return cls(**values)
