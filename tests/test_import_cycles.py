"""No import circles among the modules of a room: a circle means one concept was cut in two.

The graph counts every import of a ``dmabufsim`` module, including those
under ``if TYPE_CHECKING:`` (a type-only import is still a dependency of
the concept). A package ``__init__`` is left out as a target of
``from . import x`` (it only re-exports), so the graph is module to module.
"""

from __future__ import annotations

import ast
import pathlib

SRC = pathlib.Path(__file__).resolve().parents[1] / "src" / "dmabufsim"

#: The circles that remain, each named by the import that closes it (importer, imported); most are
#: type-only imports of the object that owns the lower module. Remove a line once its circle is gone.
KNOWN_BACK_EDGES = {
    ("kernel.held", "kernel.runtime"),
    ("kernel.accesses", "kernel.runtime"),
    ("kernel.hung_task", "kernel.runtime"),
    ("kernel.progress", "kernel.runtime"),
    ("kernel.watchdog", "kernel.runtime"),
    # type-only imports (under TYPE_CHECKING) of the object a helper serves
    ("kernel.reduction", "kernel.runtime"),
}


def _module_name(path: pathlib.Path) -> str:
    rel = path.relative_to(SRC).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in SRC.rglob("*.py")}
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for mod, path in modules.items():
        package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text())):
            targets: list[str] = []
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".") if package else []
                    base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
                    stem = ".".join([*base, *([node.module] if node.module else [])])
                elif (node.module or "").startswith("dmabufsim."):
                    stem = (node.module or "").removeprefix("dmabufsim.")
                else:
                    continue
                # ``from .pkg import mod`` names a module; ``from .mod import name`` names the module.
                for alias in node.names:
                    sub = f"{stem}.{alias.name}" if stem else alias.name
                    targets.append(sub if sub in modules else stem)
            elif isinstance(node, ast.Import):
                targets = [a.name.removeprefix("dmabufsim.") for a in node.names if a.name.startswith("dmabufsim.")]
            for t in targets:
                if t in modules and t != mod and modules[t].name != "__init__.py":
                    graph[mod].add(t)
    return graph


def _cycles(graph: dict[str, set[str]]) -> set[frozenset[str]]:
    """Tarjan's strongly connected components of size > 1."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: set[frozenset[str]] = set()
    counter = 0

    def visit(v: str) -> None:
        nonlocal counter
        index[v] = low[v] = counter
        counter += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = set()
            while True:
                w = stack.pop()
                on.discard(w)
                comp.add(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.add(frozenset(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_graph_sees_relative_and_type_only_imports() -> None:
    g = _graph()
    assert "dma.sg" in g["dma.dma_buf"]
    assert "dma.dma_buf" in g["device.ttm"]  # imported under TYPE_CHECKING only


def test_no_import_circle_among_dma_modules() -> None:
    bad = [sorted(c) for c in _cycles(_graph()) if any(m.startswith("dma.") for m in c)]
    assert bad == []


def test_no_import_circles_but_the_known_ones() -> None:
    g = _graph()
    for a, b in KNOWN_BACK_EDGES:
        g[a].discard(b)
    assert sorted(sorted(c) for c in _cycles(g)) == []


def _reaches(graph: dict[str, set[str]], src: str, dst: str) -> bool:
    seen = {src}
    todo = [src]
    while todo:
        v = todo.pop()
        if v == dst:
            return True
        for w in graph[v] - seen:
            seen.add(w)
            todo.append(w)
    return False


def test_known_circles_are_still_there() -> None:
    """A known back edge whose import is gone, or that closes no circle any more (the imported
    module no longer leads back to the importer), is listed for nothing: drop it from the list."""
    g = _graph()
    assert sorted(e for e in KNOWN_BACK_EDGES if e[1] not in g[e[0]] or not _reaches(g, e[1], e[0])) == []


def test_a_listed_edge_must_close_a_circle() -> None:
    g = {"a": {"b"}, "b": set()}
    assert not _reaches(g, "b", "a")
    g["b"].add("a")
    assert _reaches(g, "b", "a")


def test_the_detector_finds_a_circle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == {frozenset({"a", "b", "c"})}
