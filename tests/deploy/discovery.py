"""A strict JSON Schema for Cloud Run v1 objects, derived from the discovery document that ships
inside google-api-python-client (``discovery_cache/documents/run.v1.json``).

Every object forbids properties the API does not define, so a misspelt or misplaced field in
jobs.yaml (which gcloud would pass on, and the API might silently drop) fails here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import googleapiclient

DOC = Path(googleapiclient.__file__).parent / "discovery_cache" / "documents" / "run.v1.json"


def _convert(prop: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in prop:
        return {"$ref": f"#/$defs/{prop['$ref']}"}
    kind = prop.get("type")
    if kind == "array":
        return {"type": "array", "items": _convert(prop["items"])}
    if kind == "object":
        if "additionalProperties" in prop:
            return {
                "type": "object",
                "additionalProperties": _convert(prop["additionalProperties"]),
            }
        return {"type": "object"}
    if kind == "string" and prop.get("format") in ("int64", "uint64"):
        # JSON's encoding of 64-bit integers is a string; the API also takes a number.
        return {"anyOf": [{"type": "string", "pattern": r"^-?[0-9]+$"}, {"type": "integer"}]}
    if kind == "string" and "enum" in prop:
        return {"type": "string", "enum": prop["enum"]}
    if kind in ("string", "boolean", "integer", "number"):
        return {"type": kind}
    if kind == "any":
        return {}
    raise ValueError(f"unhandled discovery type {prop!r}")


def schema_for(name: str, doc_path: Path = DOC) -> dict[str, Any]:
    """JSON Schema (2020-12) of the discovery schema ``name`` with all of its references."""
    schemas: dict[str, Any] = json.loads(doc_path.read_text())["schemas"]
    defs = {}
    for key, value in schemas.items():
        props = {k: _convert(v) for k, v in value.get("properties", {}).items()}
        defs[key] = {"type": "object", "properties": props, "additionalProperties": False}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$ref": f"#/$defs/{name}",
        "$defs": defs,
    }
