"""Bounded text: every value a job sent that the worker quotes back is cut to a known length.

Error messages quote what was wrong ("job_id 'x...' is invalid") so that the sender can find it;
quoting a 4 MB string in full made 11 MB results and log lines. ``echo`` is the one way values
are quoted; ``clip`` cuts any text (an exception's message, ComfyUI's own wording); ``bound``
trims a JSON-like structure (an error's ``details``) to a few levels, items and characters.
"""

from __future__ import annotations

import reprlib
from collections.abc import Mapping
from typing import Any

ECHO_CHARS = 200  # the most characters of one quoted value
TEXT_CHARS = 4000  # the most characters of one error message
DETAIL_ITEMS = 50  # list items / object keys kept per level in an error's details
DETAIL_DEPTH = 6

_REPR = reprlib.Repr()  # keyword arguments need Python 3.12
_REPR.maxlevel = 3
_REPR.maxdict = _REPR.maxlist = _REPR.maxtuple = _REPR.maxset = 8
_REPR.maxstring = _REPR.maxother = ECHO_CHARS
_REPR.maxlong = 40


def clip(text: str, limit: int = TEXT_CHARS) -> str:
    """``text`` cut to about ``limit`` characters, saying how long it was."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text)} characters)"


def echo(value: Any, limit: int = ECHO_CHARS) -> str:
    """``repr(value)`` for a message, never longer than about ``limit`` characters.

    Never raises: a value whose repr fails (an integer past Python's digit limit) is named by
    its type.
    """
    try:
        if isinstance(value, str):
            text = repr(value[: limit + 1])
            if len(value) > limit:
                text = f"{text[:limit]}... ({len(value)} characters)"
        else:
            text = _REPR.repr(value)
    except Exception:
        text = f"<{type(value).__name__}>"
    return clip(text, limit + 40)


def safe_str(exc: BaseException, limit: int = TEXT_CHARS) -> str:
    """``str(exc)``, clipped, and never raising (some exceptions' ``__str__`` can)."""
    try:
        text = str(exc)
    except Exception:
        text = f"<{type(exc).__name__}>"
    return clip(text, limit)


def bound(value: Any, depth: int = DETAIL_DEPTH) -> Any:
    """A copy of a JSON-like value with strings clipped and containers trimmed."""
    if isinstance(value, str):
        return clip(value)
    if isinstance(value, bool | int | float) or value is None:
        return value
    if depth <= 0:
        return echo(value)
    if isinstance(value, Mapping):
        items = list(value.items())
        out = {clip(str(k), ECHO_CHARS): bound(v, depth - 1) for k, v in items[:DETAIL_ITEMS]}
        if len(items) > DETAIL_ITEMS:
            out["..."] = f"{len(items) - DETAIL_ITEMS} more"
        return out
    if isinstance(value, list | tuple):
        kept = [bound(v, depth - 1) for v in value[:DETAIL_ITEMS]]
        if len(value) > DETAIL_ITEMS:
            kept.append(f"... {len(value) - DETAIL_ITEMS} more")
        return kept
    return echo(value)
