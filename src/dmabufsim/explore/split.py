"""Dynamic splitting of a depth-first search: pieces that hand work back.

A static split (``parallel.py`` R1) cuts the tree once, at its first
choice: a choice among fewer alternatives than workers, or one subtree
larger than the others, leaves workers idle. Here a search is a set of
*pieces* (``dfs.py`` R5); a piece runs a slice of executions, then hands
the untried alternatives of its shallowest open decision back as a new
piece (the work stealing of Holzmann's multi-core SPIN DFS, with the
hand-off made by the busy piece itself, so that the tree of pieces does
not depend on timing). This module holds the rules; ``cluster.py`` runs
the pieces as Dask tasks.

Rules:

* D1 (a piece): a DFS stack whose decisions above the hand-off point are
  fixed (``dfs.py`` R5), and an *allotment*: the executions of the whole
  budget it may spend. The root piece is the whole search with the whole
  budget.
* D2 (a slice, then a hand-off): a piece of generation ``g`` (the root is
  generation 0; both pieces after a slice are one generation older) runs
  at most ``min(SLICE_MAX, SLICE_FIRST * 2**g)`` executions (its allotment
  permitting): the first hand-offs come soon, so every worker has work
  early, and later slices are long enough to pay for the dispatch of a
  task many times over. If it has work and allotment
  left, it hands off the untried alternatives of its shallowest decision
  that has some, with half of its remaining allotment; the rest of its
  allotment stays with it. Both continue as new tasks. A slice is counted
  in executions, never in seconds: the tree of pieces, and so every
  result, is a function of the scenario and the budget only.
* D3 (the index of an execution): the pieces' executions partition the
  single-process search, each piece a contiguous interval of its order
  (``dfs.py`` R5); the segments a slice ran are ordered by the path of
  their first execution and an execution's index is its position in that
  order -- exactly its index in one process when the search ran whole. A
  finding is kept at its lowest path (parallel R2 by path).
* D4 (one budget): an allotment a piece did not need (its subtree ended
  first) goes to a pool; once no task runs, the pool is dealt evenly, in
  path order, to the pieces that stopped at their allotment (parallel R6),
  round after round until the pool is empty or no piece can use it.
* D5 (stop on the first finding): a slice stops at the execution where
  one process would stop (job J1); the search then keeps running only the
  pieces that come before that execution in the order of D3 (they may hold
  an earlier stop), and the result counts the executions and keeps the
  findings up to the earliest stop: one process's count, whenever its stop
  is decided by one execution (an unexpected finding, or no expected list;
  a stop that waits for a list of expected kinds seen in several pieces
  may come later than one process's).
* D5a (a slice's lockdep graph): with the shared lockdep graph (explorer
  R7) each slice has its own, so a cycle closed across two executions is
  found only when both ran in one slice; with a graph per execution the
  findings are exactly one process's.
* D6 (verdict): the search is exhausted when every piece ended its subtree;
  proved when moreover no piece cut an alternative (``dfs.py`` R1, R2).

Classic and optimal DPOR keep their static split on ``--jobs`` and
``--cluster`` (``dpor.py`` R5, ``odpor.py`` R7): a piece of a DPOR search
adds backtrack points to decisions above its own root (Simsa, Bryant and
Gibson, RV 2012), which a hand-off has to send back to the piece that owns
them. For optimal DPOR that protocol is built (``odpor.py`` R9,
``osplit.py`` O1-O5) and runs in one process (``osplit.run_here``); it
explores every trace one process does, but runs some of them several
times (a wakeup sequence that reaches its node after the node moved past
where it belonged is explored apart), so the engine does not use it yet.
Classic DPOR has no such protocol.
"""

from __future__ import annotations

import bisect
import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from .coverage import Coverage
from .dfs import DFS
from .job import JobOptions, Progress, _close_phase, _Run, run_job
from .report import ExploredFinding, PhaseResult

__all__ = ["SLICE_FIRST", "SLICE_MAX", "Piece", "Segment", "deal_pool", "merge_segments", "run_here", "run_piece",
           "successors"]

#: Executions of the root piece's slice (D2).
SLICE_FIRST = 8
#: The most executions of one slice (D2).
SLICE_MAX = 128

Path = tuple[int, ...]


@dataclass
class Piece:
    """Part of the search (D1): its DFS and the executions it may still spend."""

    dfs: DFS
    allot: int
    #: Slices run before this piece's (D2).
    gen: int = 0

    @property
    def slice(self) -> int:
        """D2: the executions of this piece's next slice, its allotment permitting."""
        return min(SLICE_MAX, SLICE_FIRST << min(self.gen, 30))

    @property
    def start(self) -> Path:
        """The path of the piece's next execution (D3), without the decisions it has not met yet."""
        return self.dfs.path()


@dataclass
class Segment:
    """What one slice of a piece ran (D2), and the pieces that continue after it."""

    run: _Run
    #: The path of the slice's first execution (D3); () when it ran none.
    first: Path
    #: For each finding (error and info) the slice kept, the path of its execution.
    paths: dict[str, Path]
    #: The path of the execution where the slice stopped on a finding (D5), else None.
    stopped_at: Path | None
    #: The pieces that continue (the piece itself, the piece it handed off).
    after: list[Piece] = field(default_factory=list)
    #: Allotment the piece did not need: its subtree ended first (D4).
    leftover: int = 0
    #: The piece's search cut an alternative (preemption bound, value cap).
    cut: bool = False
    value_cut: bool = False
    #: The piece ended its subtree.
    complete: bool = False


def run_piece(
    scenario: Callable[..., Any],
    piece: Piece,
    options: JobOptions,
    *,
    deadline: float | None = None,
    progress: Progress | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> Segment:
    """Run one slice of ``piece`` and hand work off (D2): a pure function of its inputs (``piece`` is
    left as it was: a task that reruns, C2, starts from the same piece)."""
    dfs = copy.deepcopy(piece.dfs)
    dfs.keep_paths()
    run = run_job(scenario, [(dfs, min(piece.slice, piece.allot))], replace(options, job=0, jobs=1, checkpoint=None),
                  deadline=deadline, progress=progress, should_stop=should_stop)
    paths = dfs.paths or []
    dfs.paths = None
    seg = Segment(run=run, first=paths[0] if paths else (), paths={}, stopped_at=None, cut=dfs.cut,
                  value_cut=dfs.value_cut, complete=dfs.complete)
    for table in (run.findings, run.info):
        for sig, f in table.items():
            seg.paths[sig] = paths[f.execution]
    left = piece.allot - run.executions
    g = piece.gen + 1
    if run.reason == "first finding":
        seg.stopped_at = paths[-1]
    elif dfs.complete:
        seg.leftover = left
    elif run.reason == "execution budget" and left >= 2:
        given = dfs.handoff()
        if given is not None:
            seg.after = [Piece(dfs, left - left // 2, g), Piece(given, left // 2, g)]
        else:
            seg.after = [Piece(dfs, left, g)]
    else:  # out of allotment (D4), or halted (interrupted, time, nondeterminism): resumable as it is
        seg.after = [Piece(dfs, left, g)]
    return seg


def successors(seg: Segment, stop: Path | None) -> list[Piece]:
    """The pieces to run after ``seg`` (D5: none that lies after the earliest stop ``stop``)."""
    return [p for p in seg.after if p.allot > 0 and (stop is None or _before(p.start, stop))]


def _before(start: Path, stop: Path) -> bool:
    """Can a piece whose next execution starts with ``start`` hold an execution at or before ``stop``?"""
    return start <= stop[: len(start)]


def deal_pool(pool: int, waiting: Sequence[Piece]) -> list[Piece]:
    """D4: the pool dealt evenly, in path order, to the pieces that stopped at their allotment
    (all of them, in that order; a piece dealt nothing keeps its allotment of 0)."""
    order = sorted(waiting, key=lambda p: p.start)
    return [Piece(p.dfs, p.allot + pool // len(order) + (1 if i < pool % len(order) else 0), p.gen)
            for i, p in enumerate(order)]


def merge_segments(
    segments: Sequence[Segment], name: str, preemption_bound: int | None, exhausted: bool, reason: str,
    elapsed: float | None = None,
) -> _Run:
    """The run of the whole search (D3, D5, D6) from its slices, in any order they came back.

    ``elapsed``: the search's wall time (default: its slices' time back to back).
    """
    segs = sorted((s for s in segments if s.run.executions), key=lambda s: s.first)
    stops = [s.stopped_at for s in segs if s.stopped_at is not None]
    stop = min(stops) if stops else None
    if stop is not None:  # D5: what ran after the earliest stop does not count
        segs = segs[: bisect.bisect_right([s.first for s in segs], stop)]
    out = _Run(coverage=Coverage())
    best: dict[str, tuple[Path, ExploredFinding]] = {}
    base = 0
    for s in segs:
        r = s.run
        out.coverage.merge(r.coverage)
        out.states |= r.states
        out.nondeterminism += [m for m in r.nondeterminism if m not in out.nondeterminism]
        for table in (r.findings, r.info):
            for sig, f in table.items():
                path = s.paths[sig]
                if stop is not None and path > stop:
                    continue
                g = replace(f, execution=base + f.execution)
                old = best.get(sig)
                if old is None or path < old[0]:
                    if old is not None:
                        g.occurrences += old[1].occurrences
                    best[sig] = (path, g)
                else:
                    old[1].occurrences += f.occurrences
        base += r.executions
    out.executions = base
    for sig, (_, f) in sorted(best.items(), key=lambda kv: kv[1][0]):
        (out.findings if f.finding.is_error else out.info)[sig] = f
    phase = PhaseResult(name)
    phase.executions = base
    phase.elapsed = elapsed if elapsed is not None else sum(s.run.phases[0].elapsed for s in segments
                                                            if s.run.phases)
    errors = [f.execution for f in out.findings.values()]
    phase.first_finding_at = min(errors) + 1 if errors else None
    times = [s.run.phases[0].first_finding_time for s in segs if s.run.phases]
    known = [t for t in times if t is not None]
    phase.first_finding_time = min(known) if known else None
    proxy = DFS(preemption_bound)
    proxy.complete = exhausted and stop is None
    proxy.cut = any(s.cut for s in segments)
    proxy.value_cut = any(s.value_cut for s in segments)
    _close_phase(phase, proxy)
    phase.strategy = name
    out.phases.append(phase)
    out.phase_index = 0
    out.phase_done = base
    out.reason = "first finding" if stop is not None else reason
    return out


def run_here(
    scenario: Callable[..., Any],
    options: JobOptions,
    budget: int,
    preemption_bound: int | None = None,
    *,
    pick: Callable[[int], int] | None = None,
) -> tuple[_Run, list[tuple[int, Segment]]]:
    """The whole piece tree run in this process (tests, benchmarks): the merged run and each slice with
    the number of the slice its piece came from (-1: the root).

    ``pick(n)`` chooses which of the ``n`` open pieces runs next (default:
    the oldest): any order gives the same result (D2, D3).
    """
    open_: list[tuple[int, Piece]] = [(-1, Piece(DFS(preemption_bound), budget))]
    done: list[tuple[int, Segment]] = []
    waiting: list[Piece] = []
    pool = 0
    stop: Path | None = None
    while open_:
        parent, piece = open_.pop(pick(len(open_)) if pick is not None else 0)
        seg = run_piece(scenario, piece, options)
        me = len(done)
        done.append((parent, seg))
        if seg.stopped_at is not None and (stop is None or seg.stopped_at < stop):
            stop = seg.stopped_at
        pool += seg.leftover
        open_ += [(me, p) for p in successors(seg, stop)]
        waiting += [p for p in seg.after if p.allot <= 0]
        if not open_ and pool > 0 and waiting and stop is None:
            dealt = deal_pool(pool, waiting)
            pool = 0
            open_ = [(-1, p) for p in dealt if p.allot > 0]
            waiting = [p for p in dealt if p.allot <= 0]
    segs = [s for _, s in done]
    name = DFS(preemption_bound).describe()
    exhausted = not waiting and stop is None
    run = merge_segments(segs, name, preemption_bound, exhausted, "space exhausted" if exhausted else
                         "execution budget")
    return run, done
