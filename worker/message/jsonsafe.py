"""Strict JSON at the edges: what a message may contain, and what the worker writes.

In: standard JSON only, and only values every part of the worker can hold. Python's ``json``
accepts ``NaN`` and ``Infinity``, turns ``1e999`` into infinity, raises ``ValueError`` (not a
decode error) for an integer literal past the interpreter's digit limit and ``RecursionError``
for deep nesting, and passes lone surrogates (``"\\ud800"``), which no UTF-8 encoder accepts
later. ``loads`` refuses all of these with ``Refusal``, whose message says what to fix.

Out: ``dumps`` never writes ``NaN``/``Infinity`` (non-finite floats become ``null``), does not
ASCII-escape (a document is UTF-8, about a sixth of the escaped size for non-Latin text), and
always returns valid UTF-8 (a lone surrogate from some exception text becomes ``?``).
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

MAX_DEPTH = 64  # nesting levels; a workflow uses about five
MAX_VALUES = 200_000  # JSON values in one message; big data goes in base64 strings or GCS
MAX_INT = 2**64  # ComfyUI's largest integer inputs (seeds) are below 2**64
_INT_DIGITS = 21  # len(str(2**64)) + a sign
_SURROGATE = re.compile("[\ud800-\udfff]")


class Refusal(ValueError):
    """The text is not JSON this worker accepts; the message says why."""


def _constant(name: str) -> Any:
    raise Refusal(f"{name} is not JSON (strict JSON has no NaN or Infinity); send a number")


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise Refusal(f"the number {text[:40]} is out of range for a 64-bit float")
    return value


def _int(text: str) -> int:
    if len(text) > _INT_DIGITS or abs(value := int(text)) > MAX_INT:
        raise Refusal(f"the integer {text[:40]}... is out of range (at most 2**64 in magnitude)")
    return value


def loads(text: str) -> Any:
    """Parse ``text`` strictly; raise ``Refusal`` naming the first problem."""
    try:
        value = json.loads(text, parse_constant=_constant, parse_float=_float, parse_int=_int)
    except RecursionError:
        raise Refusal(f"the JSON is nested deeper than {MAX_DEPTH} levels") from None
    except json.JSONDecodeError as exc:
        raise Refusal(
            f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    check_tree(value)
    return value


def check_tree(value: Any) -> None:
    """Depth, size and string checks over a parsed value, without recursion."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    seen = 0
    while stack:
        item, depth = stack.pop()
        seen += 1
        if seen > MAX_VALUES:
            raise Refusal(f"the JSON has more than {MAX_VALUES} values")
        if isinstance(item, str):
            _check_text(item)
        elif isinstance(item, dict | list):
            if depth > MAX_DEPTH:
                raise Refusal(f"the JSON is nested deeper than {MAX_DEPTH} levels")
            if isinstance(item, dict):
                for key, child in item.items():
                    _check_text(key)
                    stack.append((child, depth + 1))
            else:
                stack.extend((child, depth + 1) for child in item)


def _check_text(text: str) -> None:
    if text.isascii():  # O(1) in CPython (a flag of the string): the usual case, base64 data
        return
    match = _SURROGATE.search(text)
    if match is not None:
        raise Refusal(
            f"a string holds a lone surrogate (\\u{ord(match.group()):04x}) at character "
            f"{match.start()}: it is not Unicode text; send UTF-8 (or a valid surrogate pair)"
        )


def dumps(doc: Any, *, indent: int | None = None) -> bytes:
    """UTF-8 JSON of ``doc``: never NaN/Infinity, never invalid UTF-8, never raises for odd
    values (anything not JSON is written as its ``str``)."""
    try:
        text = json.dumps(doc, indent=indent, ensure_ascii=False, allow_nan=False, default=str)
    except ValueError:  # a non-finite float somewhere: write null instead
        text = json.dumps(_finite(doc), indent=indent, ensure_ascii=False, default=str)
    return text.encode("utf-8", "replace")


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value
