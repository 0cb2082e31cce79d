"""The layout names the architecture, and the imports keep to it.

Read from the source (``ast``), every import counted, including those inside functions: the
package has no import cycle, and the core (the job loop, the message, the record) takes nothing
from the cloud libraries, the producer tools, the dev launchers, the CLI or HTTP mode. The core
reaches Pub/Sub and GCS only through the adapters' protocols (``worker/adapters/*/base.py``).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WORKER = REPO / "worker"
CORE = ("worker.loop", "worker.message", "worker.record")
FORBIDDEN_IN_CORE = (
    "google",
    "grpc",
    "worker.producer",
    "worker.local",
    "worker.commands",
    "worker.http",
    "worker.cli",
)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(WORKER.rglob("*.py"))}


def imports(path: Path, known: dict[str, Path]) -> Iterator[str]:
    """Every module ``path`` imports: ``from pkg import mod`` names ``pkg.mod`` when it is one."""
    own = module_name(path)
    package = own if path.name == "__init__.py" else own.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            submodules = [f"{target}.{a.name}" for a in node.names if f"{target}.{a.name}" in known]
            if len(submodules) < len(node.names):
                yield target  # a name defined in the module (or package) itself
            yield from submodules


def graph() -> dict[str, set[str]]:
    known = modules()
    return {
        name: {m for m in imports(path, known) if m in known and m != name}
        for name, path in known.items()
    }


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root, targets in edges.items():
        if root in index:
            continue
        work = [(root, iter(sorted(targets)))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
            elif child not in index:
                index[child] = low[child] = len(index)
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(sorted(edges[child]))))
            elif child in on_stack:
                low[node] = min(low[node], index[child])
    return found


def test_the_cycle_finder_finds_a_cycle() -> None:
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(edges) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles() -> None:
    assert cycles(graph()) == []


def test_the_core_imports_no_cloud_library_producer_launcher_or_front_end() -> None:
    known = modules()
    bad = []
    for name, path in known.items():
        if not name.startswith(CORE):
            continue
        for target in imports(path, known):
            if target.startswith(FORBIDDEN_IN_CORE):
                bad.append(f"{name} imports {target}")
    assert bad == []


def test_no_module_sits_flat_beside_the_packages_but_the_shared_basics() -> None:
    flat = sorted(p.stem for p in WORKER.glob("*.py"))
    assert flat == [
        "__init__", "__main__", "cli", "config", "configdoc", "configspec", "errors", "exitcodes",
        "retry",
    ]  # fmt: skip


def test_no_two_modules_share_a_name() -> None:
    """Beyond a family of one role's implementations (``base``, ``pubsub``, ``gcs``) and a CLI
    verb named after what it runs (``commands/cancel.py`` runs ``record/cancel.py``)."""
    families = {"base", "pubsub", "gcs"}
    seen: dict[str, list[str]] = {}
    for name in modules():
        package, _, leaf = name.rpartition(".")
        if package != "worker.commands" and leaf not in families and name != "worker.executor":
            seen.setdefault(leaf, []).append(name)
    assert {leaf: names for leaf, names in seen.items() if len(names) > 1} == {}
