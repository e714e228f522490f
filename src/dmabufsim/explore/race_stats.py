"""Race statistics of an optimal DPOR search: which races keep adding wakeup sequences.

``explore ROW --strategy odpor --race-stats`` (``ds.explore(s, "odpor",
race_stats=True)``) counts, over the whole search, the races optimal DPOR
reversed (``odpor`` R3, R4) and the wakeup sequences they inserted, grouped
by the two racing steps -- each a thread and the name of the operation it
began with -- and the object they conflict on, named as the trace prints it
(``#oid`` and the name its events carry). A design that will not exhaust
usually has a handful of such pairs behind most of its traces: the table
says which, so that a declaration too coarse for the kernel's state, or a
step of the set-up that races with everything, can be found by name.

Rules:

* S1 (what is counted): a *race* is a reversible race of ``odpor`` R3 whose
  reversal reached the wakeup tree (R4): either a sleeping thread already
  covered it, or it was inserted. *Inserted* counts the races whose
  sequence added a new branch to the wakeup tree (the ones that cost
  executions). Races that are not reversible (a wake-up, a creation, a
  virtual-time order) are not counted.
* S2 (the pair): a step is its thread (``T<tid> <name>``) and the operation
  it began with: the scheduling point it began at, or the wait it woke from
  (``dma_fence_wait (woken)``); the object is the first object of the later
  step's accesses that the earlier step also touched with a write on one
  side (thread creation and exit show as ``spawn T<n>`` / ``exit T<n>``).
* S3 (zero cost when off): the search holds ``race_stats = None`` and pays
  one test per reversed race (and one per execution, at ``attach``); on,
  the statistics subscribe to each execution's trace (every event is then
  built, a slower search) to learn the operations' and objects' names, and
  see the search open each step through an instance attribute over its
  ``_open`` (the class's method is untouched). The algorithm is unchanged:
  the statistics only read the search's state. They count one search from
  its start, in one process (no checkpoint, no ``--jobs``).
* S4 (determinism): rows are ordered by inserted sequences, then races,
  then the pair's text; the counts are the same in every run of the same
  search.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from ..kernel.runtime import TIMER_OBJ, is_timer_obj

if TYPE_CHECKING:
    from ..kernel.runtime import Kernel
    from ..kernel.trace import Event

__all__ = ["RaceRow", "RaceStats", "race_table"]

#: Operations whose object is a thread id, not an object's (their detail names the thread).
_THREAD_OPS = frozenset(("spawn", "start", "join", "join_exited", "exit"))

#: The pseudo-objects of thread creation and exit (``odpor`` R1): below every real object id.
_SPAWN = -(1 << 40)
_EXIT = -(1 << 41)


@dataclass(frozen=True)
class RaceRow:
    """One group of races (S2): the earlier and the later step, the object, the counts (S1)."""

    first: str
    second: str
    obj: str
    races: int
    inserted: int

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class RaceStats:
    """The race counters of one optimal DPOR search (see the module rules).

    Attach it as ``OptimalDPOR.race_stats`` before the search; ``rows()``
    then gives the groups, most inserted sequences first.
    """

    def __init__(self) -> None:
        #: (first step, second step, object) -> [races, inserted]
        self._counts: dict[tuple[str, str, str], list[int]] = {}
        #: Per position of the current execution: its step's text (S2).
        self._ops: list[str | None] = []
        #: Object id -> the name its events carry (the first non-empty detail).
        self._names: dict[int, str] = {}
        self._thread_names: dict[int, str] = {}
        self._search: Any = None
        self._kernel: Kernel | None = None
        self.races = 0
        self.inserted = 0

    # ------------------------------------------------------------------ the search's side

    def attach(self, kernel: Kernel, search: Any) -> None:
        """A new execution of ``search`` (``OptimalDPOR.attach``): listen to its trace for names
        (S3); its events are the search's ``_events`` of the execution."""
        self._kernel = kernel
        self._search = search
        if "_open" not in search.__dict__:
            # the search's step opening, seen by an instance attribute: the class's method stays
            # as it is, and a search without statistics never pays for it (S3)
            opened = type(search)._open

            def _open(t: Any, running: bool) -> None:
                opened(search, t, running)
                self._opened(t)

            search._open = _open
        self._ops = []
        kernel.trace.subscribe(self._event)

    def _opened(self, t: Any) -> None:
        """The search opened a step of ``t`` by a choice (or ``t`` alone runnable): it begins at
        ``t``'s point (the operation it declares) or wakes from the wait it declares (S2)."""
        search = self._search
        pos = len(search._events) - 1
        ops = self._ops
        while len(ops) < pos:
            ops.append(None)
        op = t.pending[0]
        text = self._step_text(t.tid, op if search._stack[pos].at_point else f"{op} (woken)")
        if len(ops) == pos:
            ops.append(text)
        else:
            ops[pos] = text

    def _event(self, ev: Event) -> None:
        """Every trace event: remember object names, and the first operation of each step."""
        if ev.detail and ev.obj not in self._names and ev.op not in _THREAD_OPS:
            self._names[ev.obj] = ev.detail
        if ev.tid < 0:
            return
        events = self._search._events
        ops = self._ops
        pos = len(events) - 1
        if pos < 0 or events[pos][0] != ev.tid:
            return
        while len(ops) <= pos:
            ops.append(None)
        if ops[pos] is None:
            ops[pos] = self._step_text(ev.tid, ev.op)  # a forced step: its point's operation

    def _step_text(self, tid: int, op: str) -> str:
        return f"{self._thread(tid)} {op}"

    def _thread(self, tid: int) -> str:
        name = self._thread_names.get(tid)
        if name is None:
            k = self._kernel
            threads = k._threads if k is not None else []
            name = f"T{tid} {threads[tid].name}" if tid < len(threads) else f"T{tid}"
            self._thread_names[tid] = name
        return name

    def race(self, events: list[Any], i: int, j: int, inserted: bool) -> None:
        """``odpor`` R4 reversed the race of positions ``i`` and ``j``; ``inserted``: its
        sequence added a branch to the wakeup tree (S1)."""
        ti, ai = events[i]
        tj, aj = events[j]
        key = (self._op(i, ti), self._op(j, tj), self._object(ai, aj))
        c = self._counts.get(key)
        if c is None:
            c = self._counts[key] = [0, 0]
        c[0] += 1
        self.races += 1
        if inserted:
            c[1] += 1
            self.inserted += 1

    def _op(self, pos: int, tid: int) -> str:
        ops = self._ops
        text = ops[pos] if pos < len(ops) else None
        return text if text is not None else self._step_text(tid, "?")

    def _object(self, a: Any, b: Any) -> str:
        """S2: the first object of ``b`` that ``a`` touches too, one of them writing it."""
        for o, w in b:
            for o2, w2 in a:
                if o == o2 and (w or w2):
                    return self._object_name(o)
        return "?"

    def _object_name(self, o: int) -> str:
        if o < 0:
            if _EXIT - (1 << 39) < o <= _EXIT:
                return f"exit T{_EXIT - o}"
            if _SPAWN - (1 << 39) < o <= _SPAWN:
                return f"spawn T{_SPAWN - o}"
            if o == -1:
                return "the virtual clock"
            if is_timer_obj(o):
                return f"the sleep timer of T{TIMER_OBJ - o}"
        name = self._names.get(o)
        return f"#{o} {name}" if name else f"#{o}"

    # ------------------------------------------------------------------ the results

    def rows(self, top: int | None = None) -> list[RaceRow]:
        """The groups, most inserted sequences first (S4); the first ``top`` of them."""
        items = sorted(self._counts.items(), key=lambda kv: (-kv[1][1], -kv[1][0], kv[0]))
        if top is not None:
            items = items[:top]
        return [RaceRow(a, b, o, c[0], c[1]) for (a, b, o), c in items]

    def __getstate__(self) -> dict[str, Any]:
        # a checkpoint pickles the search: the live execution's kernel and events stay out
        return {k: v for k, v in self.__dict__.items() if k not in ("_kernel", "_search", "_ops")} | {
            "_kernel": None, "_search": None, "_ops": []}


def race_table(rows: list[RaceRow], races: int, inserted: int, title: str = "races of the search") -> Any:
    """The rows as a rich table, with the totals in its caption."""
    from rich.table import Table

    t = Table(title=title, caption=f"{races:,} races reversed, {inserted:,} wakeup sequences inserted")
    for col in ("first step", "second step", "object", "races", "inserted"):
        t.add_column(col, justify="right" if col in ("races", "inserted") else "left")
    for r in rows:
        t.add_row(r.first, r.second, r.obj, f"{r.races:,}", f"{r.inserted:,}")
    return t
