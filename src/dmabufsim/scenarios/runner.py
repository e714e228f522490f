"""Settling the catalog: explore every row, compare with its expected verdict.

:func:`check` runs each modelled row of the catalog for its budget of
executions and reduces what was found to a :class:`RowResult`: the
expected and found verdicts, whether they match (catalog R1), and the
replay token of the first counterexample. Work is split into chunks of
consecutive executions and run as tasks of a Dask cluster
(``explore/cluster.py``); the split never changes the
result, because chunks are merged in execution order and the first
counterexample is the lowest-numbered execution that shows it.

Two ways to explore a row, by its ``strategy``:

* a strategy of the explorer (``random``, ``pct``, ``dfs``, ``icb``,
  ``dpor``, ``portfolio``): the row is one work item, explored by
  :func:`dmabufsim.explore.explore` in a worker with every finding kept
  (not only the first), shrunk and replay-checked; the found text says
  whether a systematic phase exhausted its space and within which bound;
* ``seeds``: execution ``i`` runs under ``RandomStrategy(seed=i)``, split
  into chunks of consecutive seeds over the workers; never exhaustive.

Either way the row's kernel options apply to every execution and a token
rebuilds its execution alone (``dmabufsim replay TOKEN CLAIM/design``).

Rules:

* R1: the result does not depend on ``jobs`` nor on the order work items
  finish in (deterministic split and merge; the explorer runs one job per
  row, seeded by the row).
* R2: a pending row (not yet modelled) is reported as ``pending`` and is
  never a pass; ``strict`` makes pending rows fail the check.
* R3: a scenario that crashes the simulator itself (not a finding) is a
  ``error`` row with the message, not a crash of the command.
* R4 (interruption): on Ctrl-C or SIGTERM (a ``KeyboardInterrupt`` in the
  caller) the work items, which run as tasks of the explorer's Dask cluster
  (``explore/cluster.py``: a local cluster's workers ignore SIGINT and die
  with their parent), are told through a stop event they poll before an
  execution; the caller collects what they return for a few seconds and
  cancels the rest. Rows whose work all finished keep their
  verdicts; the others are ``interrupted`` rows with what was found so far
  (a partial verdict, never a match); :attr:`CheckResult.interrupted` is
  set and the result is not ``ok``.
* R5 (guarantee): a clean row carries the strongest guarantee its search
  reached (explorer report R4: ``proved``, exhausted up to ``k``
  preemptions, ``N`` samples; the seed loop only samples). ``strict``
  fails every clean row that is not *proved*, unless the row documents why
  it cannot be (its ``unproved`` reason, catalog R8).
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..explore.report import Assurance, Guarantee, assurance_of
from ..kernel.findings import KINDS, SOMETIMES_INFO, Finding
from ..kernel.runtime import Kernel
from .catalog import Catalog, ClaimScenario, Found, discover

#: Most chunks a row is split into per worker (smaller chunks balance better,
#: larger ones spend less on inter-process traffic).
CHUNKS_PER_JOB = 2
#: Keep at most this many distinct lock cycles per row.
MAX_CHAINS = 8
#: The strategy name of the runner's own seed loop (execution i = random seed i).
SEEDS = "seeds"


def chain_of(f: Finding | Mapping[str, Any]) -> tuple[str, ...]:
    """The lock classes of a circular-locking finding's cycle, in order.

    Reads ``details["chain"]`` (or ``"cycle"``): a list of class names, or
    of mappings naming the class under ``class``, ``name`` or ``lock``.
    """
    details = f.details if isinstance(f, Finding) else f.get("details", {})
    raw = details.get("chain", details.get("cycle", ()))
    out: list[str] = []
    for item in raw or ():
        if isinstance(item, str):
            out.append(item)
        elif isinstance(item, Mapping):
            name = item.get("class", item.get("name", item.get("lock")))
            if isinstance(name, str):
                out.append(name)
    return tuple(out)


@dataclass(frozen=True)
class ChunkResult:
    """What executions ``start`` .. ``stop - 1`` of one row found."""

    key: str
    start: int
    stop: int
    #: kind -> (first execution index showing it, that finding as JSON).
    firsts: dict[str, tuple[int, dict[str, Any]]]
    error_kinds: tuple[str, ...]
    chains: tuple[tuple[str, ...], ...]
    steps: int
    error: str = ""
    #: Executions run (``stop - start`` for seeds; the explorer's count otherwise).
    executions: int = -1
    #: How the row was explored ("seeds", "portfolio", "dpor", ...).
    strategy: str = SEEDS
    #: "" when not exhaustive, else what was exhausted ("dpor, preemption bound 2").
    exhausted: str = ""
    #: Why the exploration stopped before its budget ("stopped: every expected
    #: bug found"): said in the table, but never counted as exhaustion.
    stopped: str = ""
    #: Wall-clock seconds spent (reported to spot slow rows; never part of a verdict).
    elapsed: float = 0.0
    #: Signatures of the ``assertion`` findings seen (the scenario's own checks, catalog R7).
    asserts: tuple[str, ...] = ()
    #: Stopped early by an interruption (R4): ``stop`` is where it got to.
    interrupted: bool = False
    #: The explorer's guarantee when it found no bug (R5); None for the seed loop.
    assurance: Assurance | None = None


@dataclass(frozen=True)
class RowResult:
    """The verdict of one catalog row."""

    row: ClaimScenario
    #: "match", "mismatch", "pending", "skipped", "error" or "interrupted" (a partial verdict, R4).
    status: str
    found: Found | None = None
    found_text: str = ""
    executions: int = 0
    steps: int = 0
    strategy: str = ""
    exhaustive: bool = False
    why: str = ""
    #: Replay token of the first counterexample ("" when none).
    token: str = ""
    #: Execution index of that counterexample (-1 when none): the seed for
    #: ``seeds``, the index within the strategy that found it otherwise.
    first_execution: int = -1
    #: The finding of the first counterexample, as JSON.
    first: dict[str, Any] | None = None
    #: kind -> first execution index showing it.
    first_by_kind: dict[str, int] = field(default_factory=dict)
    #: Wall-clock seconds of the row's search, summed over its work items.
    elapsed: float = 0.0
    #: The guarantee of a search that found no error (R5); None when it found one.
    assurance: Assurance | None = None

    @property
    def ok(self) -> bool:
        return self.status == "match"

    @property
    def clean(self) -> bool:
        """A row expected clean whose search matched (found no error)."""
        return self.status == "match" and self.row.expected is not None and self.row.expected.clean

    @property
    def guarantee(self) -> str:
        """The short guarantee of a clean row ("" for the others)."""
        return self.assurance.short() if self.clean and self.assurance is not None else ""

    @property
    def unproved(self) -> str:
        """Why a clean row fails ``strict`` (R5): "" when it was proved or documents why it cannot be."""
        if not self.clean or self.row.unproved:
            return ""
        if self.assurance is not None and self.assurance.proved:
            return ""
        got = self.assurance.describe() if self.assurance is not None else "no guarantee"
        return (f"{self.row.key}: clean but not proved ({got}); --strict demands proved, or the row's "
                "documented reason why it cannot be (its 'unproved' field)")

    @property
    def replay(self) -> str:
        """The command that rebuilds the counterexample."""
        return f"dmabufsim replay {self.token} {self.row.key}" if self.token else ""

    def to_json(self) -> dict[str, Any]:
        return {
            "claim": self.row.claim,
            "design": self.row.design,
            "key": self.row.key,
            "title": self.row.title,
            "status": self.status,
            "match": self.status == "match",
            "expected": self.row.expected.to_json() if self.row.expected else None,
            "expected_text": self.row.expected.describe() if self.row.expected else "",
            "found": sorted(self.found.kinds) if self.found else None,
            "found_text": self.found_text,
            "chains": [list(c) for c in self.found.chains] if self.found else [],
            "asserts": sorted(self.found.asserts) if self.found else [],
            "executions": self.executions,
            # Scheduling points are counted by the seed loop; the explorer does
            # not total them, so its rows say null rather than a false 0.
            "steps": self.steps if self.strategy == SEEDS else None,
            "strategy": self.strategy,
            "exhaustive": self.exhaustive,
            "why": self.why,
            "token": self.token,
            "first_execution": self.first_execution,
            "first_by_kind": dict(sorted(self.first_by_kind.items())),
            "replay": self.replay,
            "first": self.first,
            "elapsed": round(self.elapsed, 3),
            "guarantee": self.assurance.guarantee.value if self.clean and self.assurance is not None else None,
            "assurance": self.assurance.to_json() if self.clean and self.assurance is not None else None,
            "unproved_reason": self.row.unproved,
        }


# ---------------------------------------------------------------- workers

_CATALOGS: dict[tuple[str, ...], Catalog] = {}


def _catalog(extra_dirs: tuple[str, ...]) -> Catalog:
    cat = _CATALOGS.get(extra_dirs)
    if cat is None:
        cat = _CATALOGS[extra_dirs] = discover(extra_dirs)
    return cat


#: ``should_stop`` of the work item running in this worker process (R4), set by :func:`_run_task`.
_STOP: Callable[[], bool] | None = None


def _stop_requested() -> bool:
    return _STOP is not None and _STOP()


@dataclass
class _Tally:
    """What a chunk saw: the first finding of each kind (with the index it came at), the error
    kinds, the lockdep chains (at most ``MAX_CHAINS``) and the assertions' signatures."""

    firsts: dict[str, tuple[int, dict[str, Any]]] = field(default_factory=dict)
    errors: set[str] = field(default_factory=set)
    chains: list[tuple[str, ...]] = field(default_factory=list)
    asserts: set[str] = field(default_factory=set)

    def add(self, f: Finding, index: int, as_json: Callable[[], dict[str, Any]]) -> None:
        if f.kind not in self.firsts:
            self.firsts[f.kind] = (index, as_json())
        if f.is_error:
            self.errors.add(f.kind)
        if f.kind == "assertion":
            self.asserts.add(f.signature)
        if f.kind == "circular-locking":
            c = chain_of(f)
            if c and c not in self.chains and len(self.chains) < MAX_CHAINS:
                self.chains.append(c)


def run_executions(row: ClaimScenario, start: int, stop: int) -> ChunkResult:
    """Run executions ``start .. stop-1`` of ``row`` (execution i: random seed i).

    Interrupted (R4: the stop event, or a ``KeyboardInterrupt`` in this
    process), it returns the executions done so far, marked ``interrupted``.
    """
    assert row.scenario is not None
    seen = _Tally()
    steps = 0
    opts = dict(row.kernel_options)
    done = start  # executions whose findings are all counted
    try:
        for i in range(start, stop):
            if _stop_requested():
                break
            ex = Kernel(seed=i, **opts).run(row.scenario)
            steps += ex.steps
            for f in ex.findings:
                seen.add(f, i, f.to_json)
            done = i + 1
    except KeyboardInterrupt:  # R4: in an execution (Kernel.run passes it on) or between two
        pass
    return ChunkResult(row.key, start, done, seen.firsts, tuple(sorted(seen.errors)), tuple(seen.chains), steps,
                       asserts=tuple(sorted(seen.asserts)), interrupted=done < stop)


def explore_row(row: ClaimScenario, budget: int, shrink: bool = False) -> ChunkResult:
    """Explore ``row`` with the explorer (findings replay-checked; shrunk when ``shrink``).

    Shrinking is off by default: it costs far more than the search on the
    larger scenarios (tens of seconds per finding), and the unshrunk token
    replays the same execution.
    """
    from ..explore import explore

    assert row.scenario is not None and row.expected is not None
    # Stop at the first unexpected bug (the verdict is then settled: mismatch)
    # or once every expected bug was seen (explorer R3); info kinds never stop it.
    # A verdict that names an error kind in ``absent`` ("lockdep reports a cycle,
    # but no schedule deadlocks") is only settled by the whole budget: no early stop.
    # A clean row expecting faults (catalog R2) is searched to the end too: its faults
    # are expected, and a proof needs every schedule.
    expect = row.expected
    never = any(KINDS.get(kind) != "info" for kind in expect.absent)
    faults_in_clean = expect.clean and bool(expect.kinds & SOMETIMES_INFO)
    rep = explore(
        row.scenario,
        None if row.strategy == "portfolio" else row.strategy,
        budget=budget,
        seed=0,
        jobs=1,
        stop_on_first=not (never or faults_in_clean),
        expected=sorted(expect.error_kinds),
        kernel_options=dict(row.kernel_options),
        coverage=False,
        shrink_findings=shrink,
        should_stop=_stop_requested,
    )
    seen = _Tally()
    order = {p.strategy: i for i, p in enumerate(rep.phases)}
    explored = sorted(
        [*rep.findings, *rep.info], key=lambda f: (order.get(f.strategy, len(order)), f.execution, f.signature)
    )
    for i, ef in enumerate(explored):
        seen.add(ef.finding, i, ef.to_json)
    exhausted = "; ".join(f"{p.strategy.split('(')[0]} exhausted ({p.bound})" for p in rep.phases if p.exhausted)
    stopped = ""
    interrupted = rep.reason == "interrupted"
    if interrupted:
        exhausted = ""
    elif not exhausted and rep.findings and rep.executions < budget:
        stopped = "stopped at the first unexpected bug" if rep.unexpected else "stopped: every expected bug found"
    if rep.nondeterminism:
        return ChunkResult(row.key, 0, budget, {}, (), (), 0, error="nondeterminism: " + rep.nondeterminism[0])
    assurance = rep.assurance
    if assurance is None and faults_in_clean and not rep.unexpected:
        # Only the row's expected faults were found: the search's guarantee still holds (catalog R2).
        assurance = assurance_of(rep.phases, rep.executions, rep.strategy, False)
    return ChunkResult(
        row.key, 0, budget, seen.firsts, tuple(sorted(seen.errors)), tuple(seen.chains), 0,
        executions=rep.executions, strategy=row.strategy, exhausted=exhausted, stopped=stopped,
        asserts=tuple(sorted(seen.asserts)), interrupted=interrupted, assurance=assurance,
    )


def _work(row: ClaimScenario, start: int, stop: int, shrink: bool = False) -> ChunkResult:
    t0 = time.monotonic()
    try:
        c = run_executions(row, start, stop) if row.strategy == SEEDS else explore_row(row, stop - start, shrink)
    except Exception as exc:  # noqa: BLE001 - a simulator crash becomes an error row (R3)
        c = ChunkResult(row.key, start, stop, {}, (), (), 0, error=f"{type(exc).__name__}: {exc}")
    return dataclasses.replace(c, elapsed=time.monotonic() - t0)


def _run_chunk(
    extra_dirs: tuple[str, ...], key: str, fields: dict[str, Any], start: int, stop: int, shrink: bool = False
) -> ChunkResult:
    """Worker entry point: rebuild the catalog in this process and run one work item.

    ``fields`` carries the row's exploration settings as the parent sees
    them (a caller may have changed its strategy or kernel options); the
    scenario itself always comes from the discovered module.
    """
    try:
        row = dataclasses.replace(_catalog(extra_dirs).get(key), **fields)
    except Exception as exc:  # noqa: BLE001 - R3
        return ChunkResult(key, start, stop, {}, (), (), 0, error=f"{type(exc).__name__}: {exc}")
    return _work(row, start, stop, shrink)


def split(budget: int, jobs: int) -> list[tuple[int, int]]:
    """Deterministic split of ``range(budget)`` into consecutive chunks."""
    n = max(1, min(budget, jobs * CHUNKS_PER_JOB))
    size = -(-budget // n)
    return [(s, min(budget, s + size)) for s in range(0, budget, size)]


# ---------------------------------------------------------------- merging


def _found_text(
    found: Found, executions: int, strategy: str, exhausted: str, first: dict[str, int], stopped: str = ""
) -> str:
    scope = f"{executions} execution{'s' if executions != 1 else ''}, {strategy}; " + (
        exhausted or stopped or "not exhaustive"
    )
    errors = sorted(found.error_kinds)
    infos = sorted(found.kinds - found.error_kinds)
    if not errors:
        base = "clean" + (" + " + ", ".join(infos) if infos else "")
        return f"{base} ({scope})"
    parts = [f"{k} (first: #{first[k]})" if strategy == SEEDS else k for k in errors] + infos
    return ", ".join(parts) + f" ({scope})"


def merge(row: ClaimScenario, chunks: Sequence[ChunkResult], budget: int, interrupted: bool = False) -> RowResult:
    """Reduce a row's chunk results (any order) to its verdict; ``interrupted``: to a partial
    verdict (R4), status ``interrupted``, whatever was found."""
    chunks = sorted(chunks, key=lambda c: c.start)
    failed = [c for c in chunks if c.error]
    if failed:
        return RowResult(row, "error", why=failed[0].error, strategy=row.strategy, executions=failed[0].start,
                         elapsed=sum(c.elapsed for c in chunks))
    executions = sum(c.executions if c.executions >= 0 else c.stop - c.start for c in chunks)
    strategy = chunks[0].strategy if chunks else row.strategy
    exhausted = chunks[0].exhausted if len(chunks) == 1 and not interrupted else ""
    stopped = "interrupted" if interrupted else chunks[0].stopped if len(chunks) == 1 else ""
    firsts: dict[str, tuple[int, dict[str, Any]]] = {}
    errors: set[str] = set()
    chains: list[tuple[str, ...]] = []
    asserts: set[str] = set()
    steps = 0
    for c in chunks:
        steps += c.steps
        asserts.update(c.asserts)
        for kind, (i, fj) in c.firsts.items():
            if kind not in firsts or i < firsts[kind][0]:
                firsts[kind] = (i, fj)
        errors.update(c.error_kinds)
        for ch in c.chains:
            if ch not in chains and len(chains) < MAX_CHAINS:
                chains.append(ch)
    found = Found(kinds=frozenset(firsts), error_kinds=frozenset(errors), chains=tuple(chains),
                  asserts=frozenset(asserts))
    assert row.expected is not None
    ok, why = row.expected.match(found)
    # The counterexample: the first unexpected error if any, else the first
    # error, else the first asserted info kind.
    unexpected = sorted(errors - row.expected.kinds, key=lambda k: firsts[k][0])
    candidates = unexpected or sorted(errors, key=lambda k: firsts[k][0])
    if not candidates:
        candidates = sorted((k for k in row.expected.kinds if k in firsts), key=lambda k: firsts[k][0])
    first = firsts[candidates[0]] if candidates else None
    # The explorer's findings carry their execution index within the strategy
    # that found them; the seed loop's index is the seed.
    first_by_kind = {k: int(v[1].get("execution", v[0])) for k, v in firsts.items()}
    text = _found_text(found, executions, strategy, exhausted, first_by_kind, stopped)
    if interrupted:
        why = f"interrupted after {executions} of {budget} execution{'s' if budget != 1 else ''}"
        text = "so far: " + text
    assurance = None
    # R5: the explorer's own guarantee; the seed loop only samples. A clean row's expected
    # faults (catalog R2) do not void it.
    if not errors or (row.expected.clean and errors <= row.expected.kinds):
        single = chunks[0].assurance if len(chunks) == 1 else None
        assurance = single or Assurance(Guarantee.SAMPLED, strategy, executions)
    return RowResult(
        row,
        "interrupted" if interrupted else "match" if ok else "mismatch",
        found=found,
        found_text=text,
        executions=executions,
        steps=steps,
        strategy=strategy,
        exhaustive=bool(exhausted),
        why=why,
        token=str(first[1].get("token", "")) if first else "",
        first_execution=int(first[1].get("execution", first[0])) if first else -1,
        first=first[1] if first else None,
        first_by_kind=first_by_kind,
        elapsed=sum(c.elapsed for c in chunks),
        assurance=assurance,
    )


# ---------------------------------------------------------------- driver

Progress = Callable[[str, int], None]


def _fields(row: ClaimScenario) -> dict[str, Any]:
    return {"strategy": row.strategy, "kernel_options": dict(row.kernel_options), "expected": row.expected}


@dataclass(frozen=True)
class CheckResult:
    """The verdicts of a set of rows, in catalog order."""

    rows: list[RowResult]
    strict: bool = False
    #: An interruption stopped the check (R4): some rows are partial (``interrupted``).
    interrupted: bool = False

    @property
    def mismatches(self) -> list[RowResult]:
        return [r for r in self.rows if r.status in ("mismatch", "error")]

    @property
    def pending(self) -> list[RowResult]:
        return [r for r in self.rows if r.status == "pending"]

    @property
    def unproved(self) -> list[RowResult]:
        """Clean rows neither proved nor documented as unprovable (R5)."""
        return [r for r in self.rows if r.unproved]

    @property
    def ok(self) -> bool:
        """True when every modelled verdict matched (and, if strict, nothing is pending and
        every clean row is proved or documents why not), uninterrupted."""
        return not self.mismatches and not (self.strict and (self.pending or self.unproved)) and not self.interrupted

    def to_json(self) -> dict[str, Any]:
        counts: dict[str, int] = {}
        for r in self.rows:
            counts[r.status] = counts.get(r.status, 0) + 1
        guarantees: dict[str, int] = {}
        for r in self.rows:
            if r.clean and r.assurance is not None:
                g = r.assurance.guarantee.value
                guarantees[g] = guarantees.get(g, 0) + 1
        return {
            "ok": self.ok,
            "strict": self.strict,
            "interrupted": self.interrupted,
            "counts": dict(sorted(counts.items())),
            "guarantees": dict(sorted(guarantees.items())),
            "unproved": [r.unproved for r in self.unproved],
            "rows": [r.to_json() for r in self.rows],
        }


def _run_task(stop: str, *args: Any) -> ChunkResult:
    """One work item as a task of the cluster (R4: ``stop`` names the run's stop event)."""
    from ..explore.cluster import stop_poller

    global _STOP
    _STOP = stop_poller(stop)
    try:
        return _run_chunk(*args)
    finally:
        _STOP = None


def _on_cluster(
    work: Sequence[tuple[ClaimScenario, int, int]], extra: tuple[str, ...], shrink: bool, jobs: int,
    cluster: str | None, chunks: dict[str, list[ChunkResult]], progress: Progress | None,
) -> bool:
    """Run the work items as tasks of a Dask cluster, collect them into ``chunks``; True when interrupted (R4)."""
    from ..explore.cluster import collect, connect, new_stop

    try:
        eng = connect(jobs, cluster)
    except KeyboardInterrupt:
        return True
    stop_name, stop = new_stop(eng)
    futures = {
        i: eng.client.submit(_run_task, stop_name, extra, row.key, _fields(row), start, end, shrink, pure=False)
        for i, (row, start, end) in enumerate(work)
    }

    def done(c: ChunkResult) -> None:
        chunks[c.key].append(c)
        if progress:
            progress(c.key, c.stop - c.start)

    return collect(eng, futures, stop, done)


def check(
    rows: Sequence[ClaimScenario],
    *,
    jobs: int = 2,
    budget: int | None = None,
    extra_dirs: Sequence[str] = (),
    skip_slow: bool = False,
    strict: bool = False,
    shrink: bool = False,
    progress: Progress | None = None,
    cluster: str | None = None,
) -> CheckResult:
    """Explore ``rows`` and compare each with its expected verdict.

    ``budget`` overrides every row's budget; ``jobs`` > 1 runs work items on
    a local Dask cluster of ``jobs`` workers, ``cluster`` on the running one
    at that address (``explore/cluster.py``); the workers rebuild the catalog from the package and
    ``extra_dirs``: the scenario comes from the discovered module, the
    strategy, kernel options and expected verdict from the row given here.
    ``jobs == 1`` runs in this process (a row's scenario may then be any
    callable).
    ``shrink``: shrink each counterexample's schedule (slower; the token
    then replays the smallest schedule found that still shows the bug).
    ``progress(key, executions_done)`` is called as chunks finish.
    """
    if jobs < 1:
        raise ValueError(f"jobs must be at least 1, got {jobs}")
    extra = tuple(os.path.abspath(d) for d in extra_dirs)
    work: list[tuple[ClaimScenario, int, int]] = []
    budgets: dict[str, int] = {}
    results: dict[str, RowResult] = {}
    keys = {r.key for r in rows}
    aliases: dict[str, str] = {}
    for row in rows:
        if row.same_as and row.same_as in keys and row.modelled and not row.broken:
            aliases[row.key] = row.same_as  # one exploration reported under both rows (catalog R6)
            continue
        if row.broken:
            results[row.key] = RowResult(row, "error", why=row.status)
            continue
        if not row.modelled:
            results[row.key] = RowResult(row, "pending", why=row.status)
            continue
        if skip_slow and row.slow:
            results[row.key] = RowResult(row, "skipped", why="slow row (run without --skip-slow)")
            continue
        b = budget if budget is not None else row.budget
        budgets[row.key] = b
        if row.strategy == SEEDS:
            for start, stop in split(b, jobs):
                work.append((row, start, stop))
        else:
            work.append((row, 0, b))
    chunks: dict[str, list[ChunkResult]] = {k: [] for k in budgets}
    items = dict.fromkeys(budgets, 0)  # work items per row: a row is settled when all came back whole
    for row, _, _ in work:
        items[row.key] += 1
    interrupted = False
    if not cluster and (jobs == 1 or len(work) <= 1):
        try:
            for row, start, stop in work:
                c = _work(row, start, stop, shrink)
                chunks[row.key].append(c)
                if c.interrupted:  # R4: a Ctrl-C inside an execution
                    interrupted = True
                    break
                if progress:
                    progress(row.key, stop - start)
        except KeyboardInterrupt:  # R4: between two executions
            interrupted = True
    else:
        interrupted = _on_cluster(work, extra, shrink, jobs, cluster, chunks, progress)
    by_key = {r.key: r for r in rows}
    for key, cs in chunks.items():
        whole = len(cs) == items[key] and not any(c.interrupted for c in cs)
        if whole:
            results[key] = merge(by_key[key], cs, budgets[key])
        elif any(c.executions > 0 or (c.executions < 0 and c.stop > c.start) for c in cs):
            results[key] = merge(by_key[key], cs, budgets[key], interrupted=True)
        else:
            results[key] = RowResult(by_key[key], "interrupted", why="interrupted before an execution ended",
                                     strategy=by_key[key].strategy)
    for key, target in aliases.items():
        results[key] = dataclasses.replace(results[target], row=by_key[key])
    return CheckResult([results[r.key] for r in rows], strict=strict, interrupted=interrupted)
