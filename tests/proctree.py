"""A process and its live descendants, read from ``/proc`` (the HTTP checks' peak RSS, the
benchmarks' CPU of a worker with its executor process), and whether one process is alive."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path


def tree(pid: int) -> Iterator[int]:
    """``pid``, then each live descendant (all threads' children); a process that ends while
    it is read is left out."""
    todo = [pid]
    while todo:
        current = todo.pop()
        try:
            children = [
                int(c)
                for task in Path(f"/proc/{current}/task").iterdir()
                for c in (task / "children").read_text().split()
            ]
        except OSError:
            continue
        yield current
        todo += children


def alive(pid: int) -> bool:
    """Running, asleep or stopped; not gone, and not a zombie waiting to be reaped."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except (OSError, IndexError):
        return False
