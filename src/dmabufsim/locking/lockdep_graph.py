"""The lock-dependency graph: lock classes, typed edges, strong-cycle search.

Models the data lockdep keeps for the whole boot in ``kernel/locking/lockdep.c``
(``struct lock_class`` with its ``locks_after`` / ``locks_before`` lists,
the ``lock_chains`` hash, the usage bits) and the breadth-first searches
over it (``check_noncircular``, ``find_usage_forwards/backwards``), as
described in ``Documentation/locking/lockdep-design.rst``.

A :class:`LockGraph` outlives a :class:`~dmabufsim.Kernel` when the caller
asks for it (``Config.options["lockdep_graph"]``): the kernel's graph lives
for the whole boot, so dependencies seen in different executions combine.

Rules:

* R1 (classes): a class is ``(key, subclass)``; every lock initialised with
  the same key shares it (the kernel's static ``lock_class_key``). Its name
  is the key's name, ``name/N`` for subclass N (``lock_nested``).
* R2 (typed edges): an edge ``A -> B`` ("B acquired while A held") carries
  the set of its types, ``E``/``S`` for how A was held (exclusive / shared)
  times ``N``/``R`` for how B was acquired (non-recursive / recursive read).
  The first place an edge was seen (scenario stack, thread, execution) is
  kept for reports; later sightings only add types.
* R3 (strong cycles): a cycle is a deadlock iff it is *strong*: it never
  takes an ``-(xR)->`` edge followed by an ``-(Sx)->`` edge. The search
  tracks, per class, whether it was reached only through ``*R`` edges, so
  it finds a strong path whenever one exists (slightly more precise than
  the kernel's one-visit-per-class BFS, never less).
* R4 (no strong cycle is ever stored): an edge that would close one is
  reported and left out, so the graph stays acyclic and the next execution
  that makes the same mistake reports it again.
* R5 (usage bits): a class records whether it was ever taken in hardirq
  context (``IN-HARDIRQ``) and with hardirqs enabled (``HARDIRQ-ON``), each
  for write and read, with the first place it happened.
* R6 (irq conflicts through the graph): an irq-safe class must not reach an
  irq-unsafe one. Read usages count only where a reader can be blocked: an
  irq-unsafe *reader* only when the path takes it non-recursively (``*N``),
  an irq-safe *reader* only when the path holds it exclusively (``E*``).
  Strong-path restrictions inside the irq search are not applied.
* R7 (copies): :meth:`LockGraph.copy` is a graph of its own that validates
  exactly as the original: what one of them learns later, the other does
  not see.
"""

from __future__ import annotations

import itertools
from collections import deque
from dataclasses import dataclass
from typing import Any

from ..kernel.stack import Frame

_new = object.__new__

#: Edge types (``DEP_*_BIT`` in lockdep.c): how the source was held x how the target was taken.
DEP_EN = 1  #: exclusive holder -> non-recursive acquisition
DEP_SN = 2  #: shared holder -> non-recursive acquisition
DEP_ER = 4  #: exclusive holder -> recursive-read acquisition
DEP_SR = 8  #: shared holder -> recursive-read acquisition
_DEP_N = DEP_EN | DEP_SN
_DEP_E = DEP_EN | DEP_ER
DEP_ALL = DEP_EN | DEP_SN | DEP_ER | DEP_SR
_DEP_NAMES = ((DEP_EN, "EN"), (DEP_SN, "SN"), (DEP_ER, "ER"), (DEP_SR, "SR"))

#: Usage bits (``LOCK_USED_IN_HARDIRQ`` ... ``LOCK_ENABLED_SOFTIRQ_READ``): four per
#: irq state, the softirq ones the hardirq ones shifted by ``STATE_SHIFT``.
USED_IN_HARDIRQ = 1
USED_IN_HARDIRQ_READ = 2
ENABLED_HARDIRQ = 4
ENABLED_HARDIRQ_READ = 8
STATE_SHIFT = 4
USED_IN_SOFTIRQ = USED_IN_HARDIRQ << STATE_SHIFT
USED_IN_SOFTIRQ_READ = USED_IN_HARDIRQ_READ << STATE_SHIFT
ENABLED_SOFTIRQ = ENABLED_HARDIRQ << STATE_SHIFT
ENABLED_SOFTIRQ_READ = ENABLED_HARDIRQ_READ << STATE_SHIFT
#: The irq states (``enum lock_usage_bit``'s LOCK_USAGE_STATES): index 0 hardirq, 1 softirq.
HARDIRQ, SOFTIRQ = 0, 1
STATE_NAMES = ("HARDIRQ", "SOFTIRQ")
USAGE_NAMES = {
    USED_IN_HARDIRQ: "IN-HARDIRQ-W",
    USED_IN_HARDIRQ_READ: "IN-HARDIRQ-R",
    ENABLED_HARDIRQ: "HARDIRQ-ON-W",
    ENABLED_HARDIRQ_READ: "HARDIRQ-ON-R",
    USED_IN_SOFTIRQ: "IN-SOFTIRQ-W",
    USED_IN_SOFTIRQ_READ: "IN-SOFTIRQ-R",
    ENABLED_SOFTIRQ: "SOFTIRQ-ON-W",
    ENABLED_SOFTIRQ_READ: "SOFTIRQ-ON-R",
}
#: The usages a new usage bit conflicts with on the same class (``exclusive_bit``
#: plus the read-in-write check of ``mark_lock_irq``): only read+read is compatible,
#: and only within one irq state.
EXCLUSIVE_USAGE = {
    (USED_IN_HARDIRQ << sh): (ENABLED_HARDIRQ | ENABLED_HARDIRQ_READ) << sh for sh in (0, STATE_SHIFT)
} | {
    (USED_IN_HARDIRQ_READ << sh): ENABLED_HARDIRQ << sh for sh in (0, STATE_SHIFT)
} | {
    (ENABLED_HARDIRQ << sh): (USED_IN_HARDIRQ | USED_IN_HARDIRQ_READ) << sh for sh in (0, STATE_SHIFT)
} | {
    (ENABLED_HARDIRQ_READ << sh): USED_IN_HARDIRQ << sh for sh in (0, STATE_SHIFT)
}


def state_of(bit: int) -> int:
    """The irq state (HARDIRQ or SOFTIRQ) of a usage bit."""
    return SOFTIRQ if bit >> STATE_SHIFT else HARDIRQ


def _irq_match(c: LockClass, forwards: bool, dep: int, state: int = HARDIRQ) -> bool:
    """Does ``c``, joined to the path by an edge of type ``dep``, end an irq-conflict search
    in irq state ``state``?"""
    u = c.usage >> (STATE_SHIFT * state)
    if forwards:
        return bool(u & ENABLED_HARDIRQ or (u & ENABLED_HARDIRQ_READ and dep & _DEP_N))
    return bool(u & USED_IN_HARDIRQ or (u & USED_IN_HARDIRQ_READ and dep & _DEP_E))


def calc_dep(prev_read: int, next_read: int) -> int:
    """The type of the edge ``prev -> next`` (``calc_dep``)."""
    if prev_read:
        return DEP_SR if next_read == 2 else DEP_SN
    return DEP_ER if next_read == 2 else DEP_EN


def dep_names(dep: int) -> str:
    """``EN|SR`` for a set of edge types."""
    return "|".join(n for b, n in _DEP_NAMES if dep & b)


class LockClass:
    """``struct lock_class``: one class of locks and its dependencies.

    Invariants: ``after[j].src is self`` and ``classes[j].before[self.idx]``
    is the same :class:`Edge`; ``idx`` is the creation order in the graph.
    """

    __slots__ = ("after", "before", "chained", "hid", "idx", "key", "name", "subclass", "usage", "usage_sites")

    def __init__(self, idx: int, key: object, subclass: int, name: str) -> None:
        self.idx = idx
        #: ``hlock_id`` of an exclusive, blocking, un-nested acquisition (lockdep's fast path).
        self.hid = (idx + 1) << 4
        #: Chain-cache memo for such acquisitions: the chain key of the held
        #: stack below -> the chain key with this class on top, for chains
        #: in ``LockGraph.chains`` (validated; that set only grows).
        self.chained: dict[int, int] = {}
        self.key = key
        self.subclass = subclass
        #: Display name (``name`` or ``name/subclass``).
        self.name = name if subclass == 0 else f"{name}/{subclass}"
        #: Outgoing edges by target class index, in the order they were first seen.
        self.after: dict[int, Edge] = {}
        #: Incoming edges by source class index.
        self.before: dict[int, Edge] = {}
        #: Usage bits (R5) and where each was first set: (stack, thread name).
        self.usage = 0
        self.usage_sites: dict[int, tuple[tuple[Frame, ...], str]] = {}

    def usage_str(self) -> str:
        """The ``{+.+.}`` usage string of lockdep reports (hardirq W, R; softirq W, R):
        ``+`` taken with the irq enabled, ``-`` taken in the irq, ``?`` both, ``.`` neither."""
        u = self.usage

        def ch(used: int, enabled: int) -> str:
            if u & enabled:
                return "?" if u & used else "+"
            return "-" if u & used else "."

        return (ch(USED_IN_HARDIRQ, ENABLED_HARDIRQ) + ch(USED_IN_HARDIRQ_READ, ENABLED_HARDIRQ_READ)
                + ch(USED_IN_SOFTIRQ, ENABLED_SOFTIRQ) + ch(USED_IN_SOFTIRQ_READ, ENABLED_SOFTIRQ_READ))

    def __repr__(self) -> str:
        return f"<LockClass {self.name} #{self.idx}>"


class Edge:
    """One dependency ``src -> dst`` (``struct lock_list``) with where it was first seen."""

    __slots__ = ("_strs", "dep", "dst", "execution", "src", "stack", "thread")

    def __init__(
        self, src: LockClass, dst: LockClass, dep: int, stack: tuple[Frame, ...], thread: str, execution: int
    ) -> None:
        self.src = src
        self.dst = dst
        #: Union of the DEP_* types seen (R2).
        self.dep = dep
        #: Scenario stack of the first acquisition of ``dst`` under ``src``, innermost first.
        self.stack = stack
        self.thread = thread
        #: Number of the execution (in this graph's life) that first saw the edge.
        self.execution = execution
        #: The stack's frames as text, made once (a shared graph's edges reach many reports).
        self._strs: tuple[str, ...] | None = None

    def stack_strs(self) -> tuple[str, ...]:
        """``str()`` of each frame of :attr:`stack` (cached: the stack never changes)."""
        strs = self._strs
        if strs is None:
            strs = self._strs = tuple(str(f) for f in self.stack)
        return strs

    @property
    def site(self) -> str:
        strs = self.stack_strs()
        return strs[0] if strs else "?"

    def to_json(self) -> dict[str, Any]:
        strs = self.stack_strs()
        return {
            "from": self.src.name,
            "to": self.dst.name,
            "type": dep_names(self.dep),
            "thread": self.thread,
            "execution": self.execution,
            "site": strs[0] if strs else "?",
            "stack": list(strs),
        }

    def __repr__(self) -> str:
        return f"<Edge {self.src.name} -({dep_names(self.dep)})-> {self.dst.name}>"


@dataclass(frozen=True, slots=True)
class LockGraphStats:
    """A snapshot of a :class:`LockGraph` (``/proc/lockdep_stats``, roughly)."""

    classes: int
    edges: int
    chains: int
    chain_hits: int
    searches: int
    cycles: int
    executions: int
    primed: bool


class LockGraph:
    """The dependency graph of lock classes (``lock_classes`` + ``lock_chains``).

    Create one and pass it as ``Kernel(options={"lockdep_graph": g})`` to
    keep it across executions (what changes is in ``docs/lockdep.md``).
    ``to_dot()`` draws it with the cycles found highlighted.
    """

    def __init__(self) -> None:
        self.classes: list[LockClass] = []
        self._by_key: dict[tuple[object, int], LockClass] = {}
        #: Chain keys (hash of the held classes and the new one) already validated.
        self.chains: set[int] = set()
        #: Every cycle reported: (chain of class names, new edge (from, to)), first occurrence first.
        self.cycles: list[tuple[tuple[str, ...], tuple[str, str]]] = []
        self._cycle_set: set[tuple[tuple[str, ...], tuple[str, str]]] = set()
        #: True once dma_resv_lockdep() priming has run into this graph.
        self.primed = False
        #: Executions that used this graph so far.
        self.executions = 0
        #: Statistics: validations skipped thanks to the chain cache, and searches run.
        self.chain_hits = 0
        self.searches = 0

    def copy(self) -> LockGraph:
        """An independent copy: classes, edges, usage, chain cache, cycles and counters (R7).

        Every class and edge is a new object with the same fields; each
        class's ``after`` and ``before`` keep their order (the searches walk
        them in it), so validating on the copy reports exactly what the
        original would. Stacks and usage sites are immutable and shared.
        """
        g = LockGraph()
        classes = g.classes
        for c in self.classes:
            n = _new(LockClass)
            n.idx, n.hid, n.key, n.subclass, n.name = c.idx, c.hid, c.key, c.subclass, c.name
            n.chained = dict(c.chained)
            n.usage = c.usage
            n.usage_sites = dict(c.usage_sites)
            classes.append(n)
        edges: dict[Edge, Edge] = {}  # old edge -> its copy (Edge hashes by identity; never iterated)
        for c in self.classes:
            for e in c.after.values():
                ne = edges[e] = Edge(classes[e.src.idx], classes[e.dst.idx], e.dep, e.stack, e.thread, e.execution)
                ne._strs = e._strs
        for c, n in zip(self.classes, classes, strict=True):
            n.after = {j: edges[e] for j, e in c.after.items()}
            n.before = {j: edges[e] for j, e in c.before.items()}
        g._by_key = {k: classes[c.idx] for k, c in self._by_key.items()}
        g.chains = set(self.chains)
        g.cycles = list(self.cycles)
        g._cycle_set = set(self._cycle_set)
        g.primed = self.primed
        g.executions = self.executions
        g.chain_hits = self.chain_hits
        g.searches = self.searches
        return g

    # ------------------------------------------------------------------ classes

    def lock_class(self, key: object, subclass: int, name: str) -> LockClass:
        """The class of ``(key, subclass)``, registered on first use (R1)."""
        k = (key, subclass)
        c = self._by_key.get(k)
        if c is None:
            c = LockClass(len(self.classes), key, subclass, name)
            self.classes.append(c)
            self._by_key[k] = c
        return c

    def find(self, name: str) -> LockClass | None:
        """The first class with display name ``name`` (for tests and tools)."""
        for c in self.classes:
            if c.name == name:
                return c
        return None

    # ------------------------------------------------------------------ edges

    def add_edge(
        self, src: LockClass, dst: LockClass, dep: int, stack: tuple[Frame, ...], thread: str, execution: int
    ) -> Edge:
        """Record ``src -> dst`` of type ``dep`` (R2); returns the edge."""
        e = src.after.get(dst.idx)
        if e is not None:
            e.dep |= dep
            return e
        e = Edge(src, dst, dep, stack, thread, execution)
        src.after[dst.idx] = e
        dst.before[src.idx] = e
        return e

    def edge(self, src: str, dst: str) -> Edge | None:
        """The edge between the classes named ``src`` and ``dst``, if any."""
        a, b = self.find(src), self.find(dst)
        if a is None or b is None:
            return None
        return a.after.get(b.idx)

    def edges(self) -> list[Edge]:
        """Every edge, by source class then first sighting."""
        return [e for c in self.classes for e in c.after.values()]

    # ------------------------------------------------------------------ searches

    def strong_path(self, src: LockClass, src_only_xr: bool, target: LockClass, target_read: int) -> list[Edge] | None:
        """A strong dependency path ``src -> ... -> target`` (R3), shortest first, or None.

        ``src_only_xr``: the new edge into ``src`` is a recursive-read
        acquisition, so the path must leave ``src`` through an ``E*`` edge.
        ``target_read``: how ``target`` is held; a shared holder cannot end a
        path that arrived through an ``*R`` edge (``hlock_conflict``).
        """
        self.searches += 1
        if src is target and (target_read == 0 or not src_only_xr):
            return []
        start = (src.idx << 1) | int(src_only_xr)
        seen = {start}
        parent: dict[int, tuple[int, Edge]] = {}
        queue = deque((start,))
        classes = self.classes
        while queue:
            st = queue.popleft()
            c = classes[st >> 1]
            only_xr = st & 1
            for e in c.after.values():
                dep = e.dep
                if only_xr:
                    dep &= _DEP_E
                if not dep:
                    continue
                nxr = 0 if dep & _DEP_N else 1
                ns = (e.dst.idx << 1) | nxr
                if ns in seen or (nxr and (ns ^ 1) in seen):
                    continue
                seen.add(ns)
                parent[ns] = (st, e)
                if e.dst is target and (target_read == 0 or not nxr):
                    path: list[Edge] = []
                    s = ns
                    while s != start:
                        ps, pe = parent[s]
                        path.append(pe)
                        s = ps
                    path.reverse()
                    return path
                queue.append(ns)
        return None

    def irq_conflict_path(
        self, start: LockClass, forwards: bool, entry_dep: int | None, first_mask: int = DEP_ALL,
        state: int = HARDIRQ,
    ) -> list[LockClass] | None:
        """A path from ``start`` to a class whose irq usage conflicts (R6), breadth first, or None.

        ``forwards`` (``find_usage_forwards``): follow ``after`` edges to an
        irq-*unsafe* class: one taken for write with interrupts on, or for
        read with interrupts on and reached through a non-recursive (``*N``)
        acquisition (a recursive reader is not blocked by another reader).
        Backwards (``find_usage_backwards``): follow ``before`` edges to an
        irq-*safe* class: one taken for write in an interrupt, or for read in
        an interrupt and held exclusively on the path (``E*`` edge: only a
        writer blocks the interrupt's reader).

        ``entry_dep`` is the type of the edge joining ``start`` to the other
        side of the check (a new edge), which lets ``start`` itself match;
        None means ``start`` is not a candidate (a usage just set on it).
        ``first_mask`` restricts the types of the first step; ``state`` is the
        irq state whose usage bits count (HARDIRQ or SOFTIRQ). Returns the
        classes from ``start`` to the match.
        """
        self.searches += 1
        if entry_dep is not None and _irq_match(start, forwards, entry_dep, state):
            return [start]
        seen = {start.idx}
        parent: dict[int, int] = {}
        queue = deque(((start, first_mask),))
        classes = self.classes
        while queue:
            c, mask = queue.popleft()
            nbrs = c.after if forwards else c.before
            for j, e in nbrs.items():
                dep = e.dep & mask
                if not dep or j in seen:
                    continue
                seen.add(j)
                parent[j] = c.idx
                d = classes[j]
                if _irq_match(d, forwards, dep, state):
                    path = [d]
                    i = j
                    while i != start.idx:
                        i = parent[i]
                        path.append(classes[i])
                    path.reverse()
                    return path
                queue.append((d, DEP_ALL))
        return None

    # ------------------------------------------------------------------ cycles

    def note_cycle(self, chain: tuple[str, ...], new_edge: tuple[str, str]) -> bool:
        """Remember a reported cycle; True the first time this graph sees it."""
        key = (chain, new_edge)
        if key in self._cycle_set:
            return False
        self._cycle_set.add(key)
        self.cycles.append(key)
        return True

    def statistics(self) -> LockGraphStats:
        """Counts of classes, edges, cached chains, cache hits, searches, cycles and executions."""
        return LockGraphStats(
            classes=len(self.classes),
            edges=sum(len(c.after) for c in self.classes),
            chains=len(self.chains),
            chain_hits=self.chain_hits,
            searches=self.searches,
            cycles=len(self.cycles),
            executions=self.executions,
            primed=self.primed,
        )

    # ------------------------------------------------------------------ export

    def to_dot(self, name: str = "lockdep") -> str:
        """Graphviz DOT of the graph; edges of reported cycles are red, closing edges dashed."""
        on_cycle: set[tuple[str, str]] = set()
        closing: list[tuple[str, str]] = []
        for chain, new_edge in self.cycles:
            for a, b in itertools.pairwise(chain):
                on_cycle.add((a, b))
            if new_edge not in closing:
                closing.append(new_edge)
        lines = [f"digraph {_dot_id(name)} {{", "  rankdir=LR;", '  node [shape=box, fontname="monospace"];']
        ids: dict[str, str] = {}
        for c in self.classes:
            if c.name not in ids:
                ids[c.name] = f"c{c.idx}"
                lines.append(f"  c{c.idx} [label={_dot_id(c.name)}];")
        for e in self.edges():
            label = dep_names(e.dep)
            attrs = [f"label={_dot_id(label)}", f"tooltip={_dot_id(e.site)}"]
            if (e.src.name, e.dst.name) in on_cycle:
                attrs += ["color=red", "penwidth=2"]
            lines.append(f"  {ids[e.src.name]} -> {ids[e.dst.name]} [{', '.join(attrs)}];")
        for a, b in closing:
            if a in ids and b in ids:
                lines.append(f'  {ids[a]} -> {ids[b]} [color=red, style=dashed, penwidth=2, label="new"];')
        lines.append("}")
        return "\n".join(lines) + "\n"

    def __repr__(self) -> str:
        return f"<LockGraph {len(self.classes)} classes, {len(self.edges())} edges, {len(self.cycles)} cycles>"


def _dot_id(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'
