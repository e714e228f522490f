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
* R4: an edge's label says who created the dependency: the thread that
  first took the second lock while holding the first, and, for a graph
  rebuilt from a trace, ``xN``: how many times the execution did so; a
  dependency lockdep was taught at boot (``dma_resv_lockdep()``) is
  labelled ``boot``. Its tooltip names the site. The graph's label
  carries a legend saying so.
* R5: :func:`restrict` keeps the lock classes an execution took (and the
  classes of the highlighted cycle) and the edges between them: the
  classes only primed at boot (``mmap_lock``, ``dma_fence_map``...) are
  not drawn unless asked for.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field

from ..kernel.trace import Event, LockMark
from .events import is_trylock, lock_name, pair_locks


@dataclass
class LockGraph:
    """Lock classes and the dependencies between them, in first-appearance order."""

    nodes: list[str] = field(default_factory=list)
    #: (held, acquired) -> (times seen, the thread that first did it; ``boot`` for lockdep's priming).
    edges: dict[tuple[str, str], tuple[int, str]] = field(default_factory=dict)
    #: (held, acquired) -> where the dependency was first seen (the edge's tooltip, R4).
    sites: dict[tuple[str, str], str] = field(default_factory=dict)
    #: Whether the counts mean something (a graph rebuilt from a trace counts every
    #: acquisition; lockdep keeps each dependency once, with its first sighting).
    counted: bool = True
    #: Classes drawn although the execution did not take them (R5), if any.
    untouched: list[str] = field(default_factory=list)

    def add_node(self, name: str) -> None:
        if name not in self.nodes:
            self.nodes.append(name)

    def add_edge(self, a: str, b: str, who: str = "", site: str = "") -> None:
        self.add_node(a)
        self.add_node(b)
        n, first = self.edges.get((a, b), (0, who))
        self.edges[(a, b)] = (n + 1, first)
        if site and (a, b) not in self.sites:
            self.sites[(a, b)] = site

    def successors(self, a: str) -> list[str]:
        return [y for (x, y) in self.edges if x == a]


def graph_from_edges(edges: Iterable[Sequence[str]]) -> LockGraph:
    """A graph from the lockdep validator's edges: ``(held, acquired)`` class names, optionally
    followed by who first created the dependency (a thread, or ``boot``) and where (R4)."""
    g = LockGraph(counted=False)
    for e in edges:
        g.add_edge(e[0], e[1], e[2] if len(e) > 2 else "", e[3] if len(e) > 3 else "")
    return g


def restrict(g: LockGraph, classes: Collection[str], keep: Sequence[str] = ()) -> LockGraph:
    """``g`` cut down to ``classes`` and ``keep`` (a cycle to highlight) and the edges between them (R5)."""
    wanted = set(classes) | set(keep)
    out = LockGraph(counted=g.counted)
    for n in g.nodes:
        if n in wanted:
            out.add_node(n)
    for (a, b), v in g.edges.items():
        if a in wanted and b in wanted:
            out.edges[(a, b)] = v
            if (a, b) in g.sites:
                out.sites[(a, b)] = g.sites[(a, b)]
    return out


def mark_untouched(g: LockGraph, classes: Collection[str]) -> LockGraph:
    """``g`` whole, its classes outside ``classes`` drawn as not taken by the execution (R5)."""
    g.untouched = [n for n in g.nodes if n not in classes]
    return g


def graph_from_events(
    events: Sequence[Event], thread_names: dict[int, str] | None = None, marks: Sequence[LockMark] | None = None
) -> LockGraph:
    """The dependencies every thread created in a recorded execution (R2); ``marks`` (the
    execution's lock_stat hooks) leave out the attempts that gave up (events R3)."""
    names = thread_names or {}
    paired = pair_locks(events, marks)
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


def legend(g: LockGraph, reported: bool = False) -> str:
    """What the arrows, labels and styles of the drawing mean (R4); ``reported``: a dashed
    red arrow stands for the dependency lockdep reported instead of adding it."""
    if g.counted:
        who = "the thread that first did so, xN: how many times the execution did"
    else:
        who = "the thread that first did so"
        if any(w == "boot" for _, w in g.edges.values()):
            who += " (boot: taught by dma_resv_lockdep() at boot)"
    text = f"A -> B: B was taken while A was held; label: {who}; red: the reported cycle"
    if reported:
        text += " (dashed: the dependency whose acquisition closed it, reported instead of recorded)"
    if g.untouched:
        text += "; dashed boxes: classes primed at boot that this execution did not take"
    return text


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
        # Two lines: the title (and cycle), then the legend ("\\n" is DOT's line break).
        f"  label={_q(title + (' — cycle: ' + ' -> '.join([*cyc, cyc[0]]) if cyc else ''))[:-1]}\\n"
        f"{_q(legend(g, bool(cyc_edges - set(g.edges))))[1:]};",
    ]
    untouched = set(g.untouched)
    for n in g.nodes:
        attrs = ', color=red, penwidth=2' if n in cyc else ""
        if n in untouched:
            attrs += ', style=dashed, color=gray, tooltip="primed at boot; not taken by this execution"'
        lines.append(f"  {_q(n)} [label={_q(n)}{attrs}];")
    for (a, b), (count, who) in g.edges.items():
        label = (f"{who} x{count}" if who else f"x{count}") if g.counted else who
        attrs = f", tooltip={_q(g.sites[(a, b)])}" if (a, b) in g.sites else ""
        if (a, b) in cyc_edges:
            attrs += ", color=red, penwidth=2"
        lines.append(f"  {_q(a)} -> {_q(b)} [label={_q(label)}{attrs}];")
    for a, b in sorted(cyc_edges - set(g.edges)):
        lines.append(f"  {_q(a)} -> {_q(b)} [color=red, style=dashed, label=\"reported\"];")
    lines.append("}")
    return "\n".join(lines) + "\n"
