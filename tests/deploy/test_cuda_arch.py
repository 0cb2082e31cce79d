"""The offline fat-binary reader (tests/deploy/cuda_arch.py) on fat binaries built here byte by
byte, laid out as nvcc lays them out, inside other bytes as in a shared library."""

from __future__ import annotations

import struct

from tests.deploy import cuda_arch


def entry(kind: int, arch: int, payload: bytes) -> bytes:
    header = struct.pack("<HHIQIIHHI", kind, 0x0101, 64, len(payload), 0, 0, 7, 1, arch)
    return header.ljust(64, b"\0") + payload


def fatbin(*entries: bytes) -> bytes:
    body = b"".join(entries)
    return struct.pack("<IHHQ", 0xBA55ED50, 1, 16, len(body)) + body


def test_counts_sass_and_ptx_per_architecture() -> None:
    lib = (
        b"\x7fELF junk"
        + fatbin(entry(2, 80, b"x" * 24), entry(2, 86, b"y" * 8), entry(1, 90, b".version 8.5"))
        + b"more junk" * 3
        + fatbin(entry(2, 86, b"z" * 16))
    )
    found = cuda_arch.scan(lib)
    assert found.containers == 2
    assert found.sm("sass") == [80, 86] and found.sm("ptx") == [90]
    assert found.entries[("sass", 86)] == 2


def test_a_stray_magic_is_not_counted() -> None:
    stray = struct.pack("<IHHQ", 0xBA55ED50, 1, 16, 10_000)  # claims more bytes than exist
    wrong_kind = fatbin(entry(9, 80, b"x"))
    found = cuda_arch.scan(b"abc" + stray + b"def" + wrong_kind)
    assert found.containers == 0 and not found.entries
