"""The import graph of the ``fleetlog`` namespace, read from the source (``ast``), for
the layering tests of each package.

Every ``import`` counts wherever it is written, inside a function too: a circle hidden by
an import in a function body is still a circle. Only imports under ``if TYPE_CHECKING:``
are left out; they never run, and they are the sanctioned way to name a type from above.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: Where each part of the namespace lives in the repository.
FOLDERS = {
    "fleetlog": ROOT / "fleetlog",
    "fleetlog.dsl": ROOT / "dsl",
    "fleetlog.journal": ROOT / "journal",
    "fleetlog.engine": ROOT / "engine",
    "fleetlog.machines": ROOT / "machines",
}


@dataclass(frozen=True)
class Import:
    module: str  # the importing module
    target: str  # the module it imports
    line: int

    def __str__(self) -> str:
        return f"{self.module} (line {self.line}) imports {self.target}"


def modules() -> dict[str, Path]:
    """Every module of the namespace by dotted name (packages by their own name)."""
    found: dict[str, Path] = {}
    for prefix, folder in FOLDERS.items():
        for path in folder.rglob("*.py"):
            rel = path.relative_to(folder).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            found[".".join([prefix, *parts])] = path
    return found


def _type_checking_lines(tree: ast.AST) -> set[int]:
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If):
            test = node.test
            name = test.id if isinstance(test, ast.Name) else getattr(test, "attr", None)
            if name == "TYPE_CHECKING":
                for child in node.body:
                    for sub in ast.walk(child):
                        if hasattr(sub, "lineno"):
                            skip.add(sub.lineno)
    return skip


def imports() -> Iterator[Import]:
    """Every import from one module of the namespace to another."""
    known = modules()
    for name, path in sorted(known.items()):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        skip = _type_checking_lines(tree)
        is_package = path.name == "__init__.py"
        for node in ast.walk(tree):
            if not isinstance(node, ast.Import | ast.ImportFrom) or node.lineno in skip:
                continue
            for target in _targets(node, name, is_package, known):
                if target != name:
                    yield Import(name, target, node.lineno)


def _targets(
    node: ast.Import | ast.ImportFrom, module: str, is_package: bool, known: dict[str, Path]
) -> Iterator[str]:
    if isinstance(node, ast.Import):
        for alias in node.names:
            if alias.name in known or alias.name.startswith("fleetlog."):
                yield alias.name
        return
    base = node.module or ""
    if node.level:
        package = module if is_package else module.rpartition(".")[0]
        for _ in range(node.level - 1):
            package = package.rpartition(".")[0]
        base = f"{package}.{base}" if base else package
    if not (base == "fleetlog" or base.startswith("fleetlog.")):
        return
    for alias in node.names:
        sub = f"{base}.{alias.name}"
        yield sub if sub in known else base


def layer_of(module: str, layers: list[str]) -> str | None:
    """The longest prefix of ``module`` in ``layers``."""
    best = None
    for layer in layers:
        if (module == layer or module.startswith(layer + ".")) and (
            best is None or len(layer) > len(best)
        ):
            best = layer
    return best


def cycles(scope: str, edges: Iterable[Import] | None = None) -> list[list[str]]:
    """Import circles among the modules under ``scope`` (Tarjan's strongly connected
    components of more than one module); ``edges`` defaults to the real imports."""
    graph: dict[str, set[str]] = {}
    for imp in imports() if edges is None else edges:
        if imp.module.startswith(scope) and imp.target.startswith(scope):
            graph.setdefault(imp.module, set()).add(imp.target)
            graph.setdefault(imp.target, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found
