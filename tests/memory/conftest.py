"""The ``world`` fixture: the loop on in-memory adapters and a fake clock (``world.py``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.memory.world import World


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path / "work")
