"""Summarise a ``py-spy record -f raw --threads`` profile: time per thread and per frame.

    python -m bench.pyspy_summary PROFILE.txt [--jobs N] [--thread NAME] [--top 25] [--rate 200]

``bench.bare_vs_worker --py-spy PY_SPY DIR`` writes one such profile per child (``--gil``:
samples of the thread holding the GIL; ``--idle``: every thread, waiting or not). Times are
samples / rate, divided by ``--jobs`` to read as milliseconds per job. Frames are inclusive
(a function and what it called), line numbers dropped.
"""

from __future__ import annotations

import argparse
import collections
import re
from pathlib import Path

_LINE = re.compile(r":\d+\)$")


def read(path: Path) -> list[tuple[str, list[str], int]]:
    """(thread, frames outermost first, samples) per line."""
    out = []
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        thread, *frames = stack.split(";")
        out.append((thread, [_LINE.sub(")", f) for f in frames], int(count)))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("profile", type=Path)
    ap.add_argument("--jobs", type=int, default=1, help="divide by this (ms per job)")
    ap.add_argument("--thread", default="", help="frames of threads whose name contains this")
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--rate", type=float, default=200.0, help="py-spy's -r")
    args = ap.parse_args()
    scale = 1000.0 / args.rate / args.jobs
    threads: collections.Counter[str] = collections.Counter()
    frames: collections.Counter[str] = collections.Counter()
    for thread, stack, n in read(args.profile):
        name = thread.split("): ", 1)[1] if "): " in thread else "(no name yet)"
        threads[name] += n
        if args.thread in thread:
            for frame in dict.fromkeys(stack):
                frames[frame] += n
    print(f"{'ms/job':>8}  thread")
    for name, n in threads.most_common(12):
        print(f"{n * scale:8.2f}  {name}")
    print(f"\n{'ms/job':>8}  frame (inclusive), threads matching {args.thread!r}")
    for frame, n in frames.most_common(args.top):
        print(f"{n * scale:8.2f}  {frame}")


if __name__ == "__main__":
    main()
