"""Dynamic splitting of optimal DPOR: pieces, and wakeup sequences sent to their node's owner.

A piece of an optimal DPOR search (``odpor.py`` R9) owns some nodes of the
search tree: it explores their wakeup trees. Its races also call for
wakeup sequences at nodes above its own root, or at nodes it lent to
another piece; those it returns, and this module's coordinator delivers
them as Simsa, Bryant and Gibson's distributed DPOR does ("Scalable dynamic
partial order reduction", RV 2012): to the piece that owns the node, or,
when that node is finished, to a new piece. ``cluster.py`` runs the slices
as Dask tasks (C9: ``--strategy odpor`` with ``--jobs``/``--cluster``);
:func:`run_here` runs them in this process.

Rules:

* O1 (a piece): an optimal DPOR search that owns the nodes from its root
  down, except the ones it lent (``odpor.py`` R9), a *number* (the order in
  which the coordinator made it; the root piece is 0) and a generation.
* O2 (rounds): the search runs in rounds. A round runs one slice of every
  open piece -- at most ``min(SLICE_MAX, SLICE_FIRST * 2**g)`` executions for
  a piece of generation ``g`` (``split.py`` D2), dealt from what is left of
  the budget in the order of the pieces' numbers -- in any order, on any
  worker. After its slice a piece with work left hands the other children
  of its shallowest owned node that has some to a new piece (``odpor``
  R9), of the next generation, as is a piece made for a late sequence (O3)
  after the slice that sent it. Only when every slice of the round came back does the coordinator
  go on, always in the order of the pieces' numbers: the round's result,
  and so the whole search, is a function of the scenario and the budget,
  never of which worker was faster or how many there are.
* O3 (late wakeup sequences): the sequences the round's slices returned are
  delivered in that order, each to the piece that holds its node (the
  node's owner when the sequence's piece was made, following the node's
  later hand-offs), and placed there as R4 would have placed it while the
  child it was found under was explored (``odpor`` R9, :func:`place`):
  dropped when a thread asleep before that child is a weak initial of it,
  inserted into the node's wakeup tree when no child taken since is
  compatible with it, covered when the first compatible one's branch, as
  it began, leads R4's walk to a leaf, grafted where the walk ends when
  that branch is its owner's current one and nothing one process explores
  after the sequence has started there (``odpor`` R9), and otherwise
  explored apart: a new piece that runs the walked part of that branch as
  a fixed prefix (its races there are that branch's owner's) and owns the
  node where the walk ends, with the sleep set that branch began with and
  the children explored before it on the way asleep. A node its owner
  finished (reported with its final sleep set and branches) is placed
  against those; a new piece is made once per (node, sequence, sleep set).
  No sequence is dropped otherwise.
* O4 (soundness, the count): every Mazurkiewicz trace of the one-process
  search is to be explored by some piece: a sequence is left out only
  where one process would leave it out, or where the branch that covers it
  was explored as one process explores it; a sequence one process would
  have merged into a branch that has run since is explored apart, with
  fewer threads asleep than one process has there. The rules are argued
  from odpor's, not proved; the tests check them against one process, trace
  by trace (the same set of fingerprints), with the same terminal states,
  findings and verdict. Traces do run more than once (a sequence explored
  apart re-explores what one process would have merged into it: the
  children its owner added where it begins since the branch began, and
  what they lead to): each execution's trace has a fingerprint (``odpor``
  R9) and the run reports the distinct ones as its traces (the phase's
  count, as one process counts them); the execution count counts every
  execution run. A 3-thread counter of 7,134 traces: 13,065 executions in
  slices of 8 to 128 (27,167 when late sequences were explored from their
  node rather than from where R4's walk ends in their branch); 2 threads:
  none rerun.
* O5 (indices): an execution's index is its place in the order (round,
  piece number, execution in its slice); a finding is kept at its lowest
  index. With ``stop_on_first`` the search stops after the round in which a
  slice stopped on a finding and counts only the slices before the first
  such one in that order, and that one.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from .coverage import Coverage
from .job import JobOptions, Progress, _close_phase, _Run, run_job
from .odpor import Accs, Apart, OptimalDPOR, _Node, _WNode, place
from .report import PhaseResult
from .split import SLICE_FIRST, SLICE_MAX

__all__ = ["OPiece", "OSegment", "Round", "Rounds", "run_here", "run_opiece", "run_rounds"]

Path = tuple[int, ...]
Seq = tuple[tuple[int, Accs], ...]


@dataclass
class OPiece:
    """A piece of an optimal DPOR search (O1)."""

    search: OptimalDPOR
    number: int
    gen: int = 0

    @property
    def slice(self) -> int:
        """O2: the most executions of this piece's next slice."""
        return min(SLICE_MAX, SLICE_FIRST << min(self.gen, 30))


@dataclass
class OSegment:
    """What one slice of a piece ran (O2) and returned (O3)."""

    number: int
    run: _Run
    #: The piece going on (None: it finished its nodes) and the one it handed off, if any.
    after: OptimalDPOR | None = None
    given: OptimalDPOR | None = None
    foreign: list[tuple[Path, Seq, dict[int, Accs], int, int]] = field(default_factory=list)
    closed: list[tuple[Path, dict[int, Accs], dict[int, _WNode]]] = field(default_factory=list)
    prefixes: dict[Path, tuple[list[_Node], list[int]]] = field(default_factory=dict)
    traces: set[int] = field(default_factory=set)
    redundant: int = 0
    deviations: int = 0
    infeasible: int = 0
    #: The round it ran in (O2; set by the coordinator).
    round: int = 0


def run_opiece(
    scenario: Callable[..., Any],
    piece: OPiece,
    limit: int,
    options: JobOptions,
    *,
    deadline: float | None = None,
    progress: Progress | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> OSegment:
    """One slice of ``piece`` (O2), at most ``limit`` executions: a pure function of its inputs (the
    piece is left as it was: a task that reruns starts from the same piece)."""
    s = copy.deepcopy(piece.search)
    if s.traces is None:
        s.traces = set()
    run = run_job(scenario, [(s, limit)], replace(options, job=0, jobs=1, checkpoint=None),
                  deadline=deadline, progress=progress, should_stop=should_stop)
    seg = OSegment(piece.number, run, foreign=s.foreign, prefixes=s.prefixes, closed=s.closed, traces=s.traces,
                   redundant=s.redundant, deviations=s.deviations, infeasible=s.infeasible)
    s.foreign, s.prefixes, s.closed, s.traces = [], {}, [], set()
    s.redundant = s.deviations = s.infeasible = 0
    if not s.complete:
        if run.reason == "execution budget":
            seg.given = s.handoff()
        seg.after = s
    return seg


#: Runs one round's slices (pieces with their limits), returning their segments in that order.
Round = Callable[[list[tuple[OPiece, int]]], list[OSegment]]


@dataclass
class Rounds:
    """The coordinator's state between rounds (O2, O3): what a checkpoint holds."""

    pieces: list[OPiece]
    left: int
    numbers: int = 1
    #: The final sleep sets of the shared nodes their owners finished (O3).
    closed: dict[Path, tuple[dict[int, Accs], dict[int, _WNode]]] = field(default_factory=dict)
    #: The sequences made into pieces (O3): (node path, sequence, sleep set's threads).
    sent: set[tuple[Path, Seq, tuple[int, ...]]] = field(default_factory=set)
    segments: list[OSegment] = field(default_factory=list)
    stopped: bool = False
    halted: str = ""
    #: Rounds run so far (O2).
    rounds: int = 0

    @classmethod
    def start(cls, budget: int) -> Rounds:
        root = OptimalDPOR()
        root.traces = set()
        return cls([OPiece(root, 0)], budget)

    @property
    def done(self) -> bool:
        return not self.pieces or self.left <= 0 or self.stopped or bool(self.halted)

    def batch(self) -> list[tuple[OPiece, int]]:
        """O2: the slices of the next round, dealt from the budget in the pieces' order."""
        out = []
        left = self.left
        for p in sorted(self.pieces, key=lambda p: p.number):
            n = min(p.slice, left)
            if n <= 0:
                break
            out.append((p, n))
            left -= n
        return out

    def take(self, batch: list[tuple[OPiece, int]], segs: Sequence[OSegment]) -> None:
        """O2, O3, O5: the round's segments (in the batch's order) into the search."""
        ran = {p.number for p, _ in batch}
        pieces = [p for p in self.pieces if p.number not in ran]
        for (p, _n), seg in zip(batch, segs, strict=True):
            seg.round = self.rounds
            self.segments.append(seg)
            r = seg.run
            self.left -= r.executions
            if r.reason in ("interrupted", "time budget", "nondeterministic scenario"):
                self.halted = self.halted or r.reason
            if r.reason == "first finding":
                self.stopped = True
            if self.stopped:
                continue  # O5: a later slice of the round does not count once one stopped
            g = p.gen + 1
            if seg.after is not None:
                pieces.append(OPiece(seg.after, p.number, g))
            if seg.given is not None:
                seg.given.number = self.numbers
                if seg.after is not None:
                    seg.after._lent[seg.given._own_from] = self.numbers
                pieces.append(OPiece(seg.given, self.numbers, g))
                self.numbers += 1
        self.rounds += 1
        if self.stopped:
            first = next(i for i, s in enumerate(segs) if s.run.reason == "first finding")
            del self.segments[len(self.segments) - len(segs) + first + 1 :]
            for s in segs[first + 1 :]:
                self.left += s.run.executions
        pieces.sort(key=lambda p: p.number)
        self.pieces = pieces
        if self.stopped:
            return
        for seg in segs:
            for path, sleep, began in seg.closed:
                old = self.closed.get(path)
                self.closed[path] = ({**old[0], **sleep}, {**old[1], **began}) if old is not None else (sleep, began)
        by_number = {p.number: p for p in pieces}
        gens = {p.number: p.gen for p, _ in batch}
        for seg in segs:
            for path, v, sleep, child, owner in seg.foreign:
                found = self._deliver(by_number, path, v, child, owner)
                if found is None:
                    continue  # inserted into its owner's tree, or covered
                where, holder = found
                if where is None:
                    where = Apart(sleep, rest=list(v))
                chain = tuple(where.chain)
                key = (path, chain, tuple(where.sleep))
                if key in self.sent:
                    continue
                self.sent.add(key)
                prefix, owners = seg.prefixes[path]
                search = OptimalDPOR.piece_at(prefix, owners, chain, where.sleep, self.numbers, traces=True,
                                              walk=len(where.walk), asleep=where.asleep, below=holder)
                new = OPiece(search, self.numbers, gens[seg.number] + 1)  # O2: as the sender's hand-offs
                self.numbers += 1
                pieces.append(new)
                by_number[new.number] = new

    def _deliver(self, by_number: dict[int, OPiece], path: Path, v: Seq, child: int,
                 owner: int) -> tuple[Apart | None, int] | None:
        """O3: the sequence to the piece that holds its node (following the node's hand-offs), or
        placed among the children of the finished node. None: inserted or covered; else how to
        explore it apart (None: the node is unknown, explored apart with the sleep set it had under
        its child, nothing lost) and the number of the piece that held the node last."""
        seen = set()
        while owner not in seen:
            seen.add(owner)
            p = by_number.get(owner)
            held = p.search.holder(path) if p is not None else None
            if p is None or held is None:
                break
            if held == owner:
                got = p.search.accept(len(path), v, child)
                return None if got is None else (got, owner)
            owner = held
        known = self.closed.get(path)
        if known is None:
            return None, owner
        final, began = known
        where = place(final, None, (), child, list(v), began)
        if isinstance(where, Apart):
            return where, owner
        if where:
            return None  # covered
        return Apart(dict(final), rest=list(v)), owner  # last among the node's children: every one asleep (R5)

    def merge(self, elapsed: float | None = None) -> tuple[_Run, int]:
        """O4, O5: the run of the whole search, and the number of distinct traces it ran."""
        out = _Run(coverage=Coverage())
        best: dict[str, Any] = {}
        base = 0
        traces: set[int] = set()
        redundant = deviations = 0
        for s in self.segments:
            r = s.run
            out.coverage.merge(r.coverage)
            out.states |= r.states
            out.nondeterminism += [m for m in r.nondeterminism if m not in out.nondeterminism]
            traces |= s.traces
            redundant += s.redundant
            deviations += s.deviations
            for table in (r.findings, r.info):
                for sig, f in table.items():
                    g = replace(f, execution=base + f.execution)
                    old = best.get(sig)
                    if old is None:
                        best[sig] = g
                    else:
                        old.occurrences += f.occurrences
            base += r.executions
        out.executions = base
        for sig, f in best.items():
            (out.findings if f.finding.is_error else out.info)[sig] = f
        exhausted = not self.pieces and not self.stopped and not self.halted
        proxy = OptimalDPOR()
        proxy.complete = exhausted
        proxy.redundant, proxy.deviations = redundant, deviations
        phase = PhaseResult(proxy.describe())
        phase.executions = len(traces)  # O4: the phase's count is its distinct traces (one process's)
        phase.elapsed = elapsed if elapsed is not None else sum(s.run.phases[0].elapsed for s in self.segments
                                                                if s.run.phases)
        errors = [f.execution for f in out.findings.values()]
        phase.first_finding_at = min(errors) + 1 if errors else None
        _close_phase(phase, proxy)
        out.phases.append(phase)
        out.phase_done = base
        out.reason = ("first finding" if self.stopped else self.halted or
                      ("space exhausted" if exhausted else "execution budget"))
        return out, len(traces)


def run_rounds(rounds: Rounds, run_round: Round, *, after_round: Callable[[Rounds], None] | None = None) -> Rounds:
    """Run rounds (O2) until the search ends, the budget is spent, or a slice stopped or halted."""
    while not rounds.done:
        batch = rounds.batch()
        rounds.take(batch, run_round(batch))
        if after_round is not None:
            after_round(rounds)
    return rounds


def run_here(
    scenario: Callable[..., Any], options: JobOptions, budget: int,
) -> tuple[_Run, int, Rounds]:
    """The whole search run in this process, round after round (tests, benchmarks): the merged run,
    its distinct traces (O4) and the coordinator's state."""

    def one_round(batch: list[tuple[OPiece, int]]) -> list[OSegment]:
        return [run_opiece(scenario, p, n, options) for p, n in batch]

    rounds = run_rounds(Rounds.start(budget), one_round)
    run, traces = rounds.merge()
    return run, traces, rounds
