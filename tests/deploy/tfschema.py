"""Check Terraform files against the google provider's own schema, without the provider binary.

``terraform validate`` needs the provider plugin, which cannot be downloaded here. The schema also
ships inside PyPI's ``cdktf-cdktf-provider-google`` wheel (16.12.1 is generated from provider
6.50.0) as a jsii assembly: one Config interface per resource, a property per argument or nested
block, with ``optional`` and the Terraform name in its docs link. ``extract`` turns that into a
small JSON schema; ``check`` walks the parsed HCL (python-hcl2) and reports every unknown
resource type, argument or block, every missing required one, and repeated single blocks.

    python -m tests.deploy.tfschema extract WHEEL OUT.json
    python -m tests.deploy.tfschema check OUT.json infra/
"""

from __future__ import annotations

import io
import json
import re
import sys
import tarfile
import zipfile
from pathlib import Path
from typing import Any

import hcl2

META_ARGS = {
    "count",
    "for_each",
    "depends_on",
    "provider",
    "lifecycle",
    "provisioner",
    "connection",
}
Block = dict[str, Any]  # {"attrs": {name: required}, "blocks": {name: [required, many, Block]}}


def _tf_name(prop: dict[str, Any]) -> str:
    link = re.search(r"#([a-z0-9_]+) [A-Za-z0-9]+#", prop.get("docs", {}).get("remarks", ""))
    return link.group(1) if link else re.sub(r"(?<!^)([A-Z])", r"_\1", prop["name"]).lower()


def _nested_fqn(kind: dict[str, Any]) -> tuple[str | None, bool]:
    """The datatype a property nests (and whether it may repeat), or (None, False)."""
    if "fqn" in kind:
        return (None, False) if kind["fqn"].startswith("cdktf.") else (kind["fqn"], False)
    if "collection" in kind and kind["collection"]["kind"] == "array":
        fqn, _ = _nested_fqn(kind["collection"]["elementtype"])
        return fqn, True
    for member in kind.get("union", {}).get("types", []):
        fqn, many = _nested_fqn(member)
        if fqn:
            return fqn, many
    return None, False


def _block(types: dict[str, Any], fqn: str, depth: int = 0) -> Block:
    out: Block = {"attrs": {}, "blocks": {}}
    for prop in types[fqn].get("properties", []):
        required = not prop.get("optional", False)
        nested, many = _nested_fqn(prop["type"])
        if nested and depth < 12:
            out["blocks"][_tf_name(prop)] = [required, many, _block(types, nested, depth + 1)]
        else:
            out["attrs"][_tf_name(prop)] = required
    return out


def extract(wheel: Path) -> dict[str, Any]:
    """Read the jsii assembly out of the wheel (no install) into {resource|data: {type: Block}}."""
    with zipfile.ZipFile(wheel) as whl:
        name = next(n for n in whl.namelist() if n.endswith(".jsii.tgz"))
        with tarfile.open(fileobj=io.BytesIO(whl.read(name))) as tar:
            member = tar.extractfile("package/.jsii")
            assert member is not None
            types: dict[str, Any] = json.load(member)["types"]
    schema: dict[str, Any] = {"resource": {}, "data": {}}
    for cls in types.values():
        kind = {"cdktf.TerraformResource": "resource", "cdktf.TerraformDataSource": "data"}.get(
            cls.get("base", "")
        )
        link = re.search(
            r"/docs/[a-z-]+/[a-z0-9_]+ (google_[a-z0-9_]+)\}", cls["docs"].get("summary", "")
        )
        if kind and link:
            config = cls["initializer"]["parameters"][2]["type"]["fqn"]
            schema[kind][link.group(1)] = _block(types, config)
    return schema


def _unquote(key: str) -> str:
    return key[1:-1] if len(key) >= 2 and key[0] == key[-1] == '"' else key


def _check_body(body: dict[str, Any], spec: Block, where: str, top: bool = False) -> list[str]:
    problems = []
    for key, value in body.items():
        if key.startswith("__"):
            continue
        if key in spec["blocks"]:
            _, many, nested = spec["blocks"][key]
            items = value if isinstance(value, list) else [value]
            if not all(isinstance(i, dict) and i.get("__is_block__") for i in items):
                problems.append(f"{where}: '{key}' is a block: write `{key} {{ ... }}`")
                continue
            if not many and len(items) > 1:
                problems.append(f"{where}: block '{key}' may appear once, found {len(items)}")
            for item in items:
                problems += _check_body(item, nested, f"{where}.{key}")
        elif key in spec["attrs"]:
            if (
                isinstance(value, list)
                and value
                and all(isinstance(i, dict) and i.get("__is_block__") for i in value)
            ):
                problems.append(f"{where}: '{key}' is an argument: write `{key} = ...`")
        elif not (top and key in META_ARGS):
            problems.append(f"{where}: unknown argument or block '{key}'")
    return problems + _missing(body, spec, where)


def _missing(body: dict[str, Any], spec: Block, where: str) -> list[str]:
    problems = [
        f"{where}: missing required argument '{name}'"
        for name, required in spec["attrs"].items()
        if required and name not in body
    ]
    problems += [
        f"{where}: missing required block '{name}'"
        for name, (required, _, _) in spec["blocks"].items()
        if required and name not in body
    ]
    return problems


def check(schema: dict[str, Any], files: list[Path]) -> list[str]:
    """Every problem in the files' resources and data sources, as 'file: type.name: message'."""
    problems = []
    for path in files:
        doc = hcl2.load(path.open())
        for kind in ("resource", "data"):
            for entry in doc.get(kind, []):
                for quoted_type, named in entry.items():
                    rtype = _unquote(quoted_type)
                    for rname, body in named.items():
                        where = f"{path.name}: {kind} {rtype}.{_unquote(rname)}"
                        spec = schema[kind].get(rtype)
                        if spec is None:
                            problems.append(f"{where}: the provider has no {kind} '{rtype}'")
                        else:
                            problems += _check_body(body, spec, where, top=True)
    return problems


def main(argv: list[str]) -> int:
    if len(argv) == 3 and argv[0] == "extract":
        Path(argv[2]).write_text(json.dumps(extract(Path(argv[1]))))
        return 0
    if len(argv) == 3 and argv[0] == "check":
        schema = json.loads(Path(argv[1]).read_text())
        files = sorted(Path(argv[2]).glob("*.tf"))
        problems = check(schema, files)
        for p in problems:
            print(p, file=sys.stderr)
        print(f"tfschema: {len(files)} files, {len(problems)} problems", file=sys.stderr)
        return 1 if problems or not files else 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
