"""Leave out of a venv the files that the image never loads: delete what image/trim.txt names.

Each entry of the list is a glob relative to site-packages (``**`` spans folders) and the reason
nothing on the image's GPU loads it. Every entry must match at least one path, or nothing is
deleted and this exits 1, so that a lock change that moves or renames the files is noticed
instead of shipping them again. It prints the bytes each entry removes. Standard library only:
the Dockerfile's build stage runs it with /opt/venv/bin/python, and scripts/image-venv runs it on
.venv-image, so that the tests run on what ships.

    python image/trim.py [--site-packages DIR] [--dry-run] image/trim.txt

The site-packages folder defaults to the running interpreter's (a venv's python: that venv's).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path, PurePosixPath


@dataclass(frozen=True)
class Entry:
    pattern: str
    reason: str
    line: int


@dataclass(frozen=True)
class Match:
    entry: Entry
    paths: tuple[Path, ...]
    size: int  # bytes of the files under those paths


def parse(text: str) -> list[Entry]:
    """One entry a line: a glob, whitespace, the reason. ``#`` starts a comment line."""
    entries: list[Entry] = []
    seen: set[str] = set()
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        pattern, *rest = line.split(None, 1)
        reason = rest[0].strip() if rest else ""
        path = PurePosixPath(pattern)
        if not reason:
            raise ValueError(f"line {number}: {pattern!r} has no reason")
        if path.is_absolute() or ".." in path.parts or pattern in ("*", "**"):
            raise ValueError(f"line {number}: {pattern!r} must be a glob inside site-packages")
        if pattern in seen:
            raise ValueError(f"line {number}: {pattern!r} is listed twice")
        seen.add(pattern)
        entries.append(Entry(pattern, reason, number))
    return entries


def size_of(path: Path) -> int:
    if path.is_symlink() or not path.is_dir():
        return path.lstat().st_size
    total = 0
    for folder, _, files in os.walk(path):
        total += sum((Path(folder) / name).lstat().st_size for name in files)
    return total


def plan(site: Path, entries: list[Entry]) -> list[Match]:
    """What each entry matches under ``site`` (a path inside another match is not repeated)."""
    found = []
    for entry in entries:
        paths = sorted(site.glob(entry.pattern))
        top = tuple(p for p in paths if not any(q in p.parents for q in paths))
        found.append(Match(entry, top, sum(size_of(p) for p in top)))
    return found


def remove(matches: list[Match]) -> None:
    for match in matches:
        for path in match.paths:
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("list", type=Path, help="the trim list (image/trim.txt)")
    parser.add_argument("--site-packages", type=Path, default=Path(sysconfig.get_path("purelib")))
    parser.add_argument("--dry-run", action="store_true", help="report, delete nothing")
    args = parser.parse_args(argv)
    try:
        entries = parse(args.list.read_text())
    except ValueError as exc:
        print(f"trim: {args.list}: {exc}", file=sys.stderr)
        return 1
    site = args.site_packages
    if not site.is_dir():
        print(f"trim: {site} is not a folder", file=sys.stderr)
        return 1
    matches = plan(site, entries)
    missing = [m.entry for m in matches if not m.paths]
    for entry in missing:
        print(
            f"trim: {args.list}:{entry.line}: {entry.pattern} matches nothing in {site}: the "
            "lock moved these files; check the reason again and update the entry",
            file=sys.stderr,
        )
    if missing:
        return 1
    for match in matches:
        count = len(match.paths)
        print(f"trim: {match.size:>13,} bytes  {count:>3} path(s)  {match.entry.pattern}")
    total = sum(m.size for m in matches)
    if not args.dry_run:
        remove(matches)
    verb = "would remove" if args.dry_run else "removed"
    print(f"trim: {verb} {total:,} bytes in all from {site}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
