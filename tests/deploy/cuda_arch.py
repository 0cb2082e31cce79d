"""Which GPU architectures a CUDA library carries code for, read offline (no GPU, no cuobjdump).

A CUDA shared library embeds fat binaries (magic ``0xBA55ED50``): a 16-byte header (magic u32,
version u16, header size u16, payload size u64), then entries, each with a kind (1 PTX, 2 ELF
cubin, i.e. SASS), its own header size and payload size, and the target ``sm_XY``. This scans a
file for fat binaries and counts entries per kind and architecture.

Why it matters here: the L4 is sm_89 and Cloud Run's driver is 535 (CUDA 12.2). SASS for sm_80,
sm_86 or sm_89 runs on it as is. PTX would have to be compiled by the driver, and a driver can
only JIT PTX from a toolkit no newer than itself, so a cu126/cu128 build must not depend on it.

    python -m tests.deploy.cuda_arch FILE...
"""

from __future__ import annotations

import mmap
import struct
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

MAGIC = struct.pack("<I", 0xBA55ED50)
KINDS = {1: "ptx", 2: "sass"}
_HEADER = struct.Struct("<IHHQ")  # magic, version, header size, size of what follows
_ENTRY = struct.Struct("<HHIQIIHHI")  # kind, ?, header size, payload size, ?, ?, minor, major, arch


@dataclass
class Archs:
    containers: int = 0
    entries: Counter[tuple[str, int]] = field(default_factory=Counter)  # (kind, sm) -> count

    def sm(self, kind: str) -> list[int]:
        return sorted({sm for (k, sm) in self.entries if k == kind})


def scan(data: bytes | mmap.mmap) -> Archs:
    found = Archs()
    at = data.find(MAGIC)
    while at != -1:
        end = _container(data, at, found)
        at = data.find(MAGIC, max(end, at + 4))
    return found


def _container(data: bytes | mmap.mmap, start: int, found: Archs) -> int:
    """Read one fat binary at ``start``; return where it ends (``start`` if it isn't one)."""
    if start + _HEADER.size > len(data):
        return start
    _magic, version, header_size, size = _HEADER.unpack_from(data, start)
    end = int(start + header_size + size)
    if version != 1 or header_size != _HEADER.size or end > len(data):
        return start
    entries: list[tuple[str, int]] = []
    at = start + header_size
    while at + _ENTRY.size <= end:
        kind, _u1, entry_header, payload, *_rest, arch = _ENTRY.unpack_from(data, at)
        if kind not in KINDS or entry_header < _ENTRY.size or not 20 <= arch <= 200:
            return start  # not a fat binary after all: count nothing from it
        entries.append((KINDS[kind], arch))
        at += entry_header + payload
    found.containers += 1
    found.entries.update(entries)
    return end


def scan_file(path: Path) -> Archs:
    with path.open("rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
        return scan(data)


def main(argv: list[str]) -> int:
    for name in argv:
        archs = scan_file(Path(name))
        sass = " ".join(f"sm_{sm}" for sm in archs.sm("sass")) or "-"
        ptx = " ".join(f"compute_{sm}" for sm in archs.sm("ptx")) or "-"
        print(f"{name}: {archs.containers} fat binaries; SASS {sass}; PTX {ptx}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
