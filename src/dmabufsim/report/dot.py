"""Graphviz DOT of a lock-dependency graph, with the reported cycle highlighted.

Models the picture a kernel developer draws from ``/proc/lockdep`` and a
lockdep splat: one node per lock class, an edge ``A -> B`` when some
thread acquired ``B`` while holding ``A``, and the cycle of a
``circular-locking`` report drawn in red.

The graph comes from one of two sources:

* the lockdep validator's own graph, when the execution ran with lockdep
  (:func:`graph_from_edges` with its edge list; it includes the
  pseudo-locks ``fs_reclaim``, ``dma_fence_map``...);
* a recorded trace (:func:`graph_from_events`): every lock operation of the
  execution, paired with its unlock. This sees only real locks (pseudo-lock
  annotations leave no event) and adds an edge from *every* lock held to
  the new one (lockdep proper records the dependency on each held lock
  too, stopping at a trylock).

Rules:

* R1: nodes and edges are emitted in a deterministic order (first
  appearance), so the same execution gives the same DOT text.
* R2: an acquisition by trylock adds no edge into the lock it takes (a
  trylock cannot wait), but the lock counts as held afterwards.
* R3: the highlighted cycle is the one given (a finding's chain) or, when
  none is given, the first cycle found by a depth-first search in
  first-appearance order.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from ..kernel.trace import Event
from .events import is_trylock, lock_name, pair_locks


@dataclass
class LockGraph:
    """Lock classes and the dependencies between them, in first-appearance order."""

    nodes: list[str] = field(default_factory=list)
    #: (held, acquired) -> (times seen, the thread that first did it).
    edges: dict[tuple[str, str], tuple[int, str]] = field(default_factory=dict)

    def add_node(self, name: str) -> None:
        if name not in self.nodes:
            self.nodes.append(name)

    def add_edge(self, a: str, b: str, who: str = "") -> None:
        self.add_node(a)
        self.add_node(b)
        n, first = self.edges.get((a, b), (0, who))
        self.edges[(a, b)] = (n + 1, first)

    def successors(self, a: str) -> list[str]:
        return [y for (x, y) in self.edges if x == a]


def graph_from_edges(edges: Iterable[tuple[str, str]]) -> LockGraph:
    """A graph from ``(held, acquired)`` class-name pairs (the lockdep validator's edges)."""
    g = LockGraph()
    for a, b in edges:
        g.add_edge(a, b)
    return g


def graph_from_events(events: Sequence[Event], thread_names: dict[int, str] | None = None) -> LockGraph:
    """The dependencies every thread created in a recorded execution (R2)."""
    names = thread_names or {}
    paired = pair_locks(events)
    release_at: dict[int, int] = {}
    taken: set[int] = set()
    for acq, rel in paired:
        taken.add(acq)
        if rel is not None:
            release_at[rel] = acq
    g = LockGraph()
    held: dict[int, list[int]] = {}
    for i, ev in enumerate(events):
        if i in taken:
            name = lock_name(ev)
            g.add_node(name)
            stack = held.setdefault(ev.tid, [])
            if not is_trylock(ev.op):
                for h in stack:
                    hname = lock_name(events[h])
                    if hname != name or events[h].obj != ev.obj:
                        g.add_edge(hname, name, names.get(ev.tid, f"T{ev.tid}"))
            stack.append(i)
        elif i in release_at:
            stack = held.get(ev.tid, [])
            acq = release_at[i]
            if acq in stack:
                stack.remove(acq)
    return g


def find_cycle(g: LockGraph) -> list[str]:
    """The first cycle of ``g`` in first-appearance order, as class names (R3); [] if acyclic."""
    state: dict[str, int] = {}
    path: list[str] = []

    def dfs(a: str) -> list[str]:
        state[a] = 1
        path.append(a)
        for b in g.successors(a):
            if state.get(b) == 1:
                return path[path.index(b):]
            if b not in state:
                found = dfs(b)
                if found:
                    return found
        state[a] = 2
        path.pop()
        return []

    for n in g.nodes:
        if n not in state:
            c = dfs(n)
            if c:
                return c
    return []


def _q(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def to_dot(g: LockGraph, cycle: Sequence[str] | None = None, title: str = "lock dependencies") -> str:
    """The DOT text of ``g``, the edges of ``cycle`` (default: :func:`find_cycle`) in red."""
    cyc = list(cycle) if cycle is not None else find_cycle(g)
    if len(cyc) > 1 and cyc[0] == cyc[-1]:
        cyc = cyc[:-1]
    cyc_edges = {(cyc[i], cyc[(i + 1) % len(cyc)]) for i in range(len(cyc))} if len(cyc) > 1 else set()
    if len(cyc) == 1:
        cyc_edges = {(cyc[0], cyc[0])}
    lines = [
        f"digraph {_q(title)} {{",
        "  rankdir=LR;",
        '  node [shape=box, fontname="monospace"];',
        f"  label={_q(title + (' — cycle: ' + ' -> '.join([*cyc, cyc[0]]) if cyc else ''))};",
    ]
    for n in g.nodes:
        attrs = ', color=red, penwidth=2' if n in cyc else ""
        lines.append(f"  {_q(n)} [label={_q(n)}{attrs}];")
    for (a, b), (count, who) in g.edges.items():
        label = f"{who} x{count}" if who else f"x{count}"
        attrs = ", color=red, penwidth=2" if (a, b) in cyc_edges else ""
        lines.append(f"  {_q(a)} -> {_q(b)} [label={_q(label)}{attrs}];")
    for a, b in sorted(cyc_edges - set(g.edges)):
        lines.append(f"  {_q(a)} -> {_q(b)} [color=red, style=dashed, label=\"reported\"];")
    lines.append("}")
    return "\n".join(lines) + "\n"
