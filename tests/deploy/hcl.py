"""The Terraform in infra/, parsed with python-hcl2 into plain values (quotes stripped)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hcl2

INFRA = Path(__file__).resolve().parents[2] / "infra"


def _plain(value: Any) -> Any:
    if isinstance(value, str):
        return value[1:-1] if len(value) >= 2 and value[0] == value[-1] == '"' else value
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {_plain(k): _plain(v) for k, v in value.items() if not str(k).startswith("__")}
    return value


@dataclass
class Infra:
    resources: dict[tuple[str, str], dict[str, Any]]
    blocks: dict[str, list[dict[str, Any]]]  # terraform, provider, variable, locals, output ...

    def of_type(self, rtype: str) -> dict[str, dict[str, Any]]:
        return {name: body for (t, name), body in self.resources.items() if t == rtype}

    def get(self, rtype: str, name: str) -> dict[str, Any]:
        return self.resources[(rtype, name)]

    def locals(self) -> dict[str, Any]:
        merged: dict[str, Any] = {}
        for block in self.blocks.get("locals", []):
            merged.update(block)
        return merged


def load(directory: Path = INFRA) -> Infra:
    resources: dict[tuple[str, str], dict[str, Any]] = {}
    blocks: dict[str, list[dict[str, Any]]] = {}
    for path in sorted(directory.glob("*.tf")):
        with path.open() as f:
            doc = _plain(hcl2.load(f))
        for key, entries in doc.items():
            if key == "resource":
                for entry in entries:
                    for rtype, named in entry.items():
                        for name, body in named.items():
                            resources[(rtype, name)] = body
            else:
                blocks.setdefault(key, []).extend(entries)
    return Infra(resources, blocks)


def one(body: dict[str, Any], block: str) -> dict[str, Any]:
    """The single nested block ``block`` of a resource body."""
    items = body[block]
    assert isinstance(items, list) and len(items) == 1, f"one {block} block"
    item = items[0]
    assert isinstance(item, dict)
    return item
