"""Settling the catalog: explore every row, compare with its expected verdict.

:func:`check` runs each modelled row of the catalog for its budget of
executions and reduces what was found to a :class:`RowResult`: the
expected and found verdicts, whether they match (catalog R1), and the
replay token of the first counterexample. Work is split into chunks of
consecutive executions and run over processes
(``concurrent.futures.ProcessPoolExecutor``); the split never changes the
result, because chunks are merged in execution order and the first
counterexample is the lowest-numbered execution that shows it.

Execution ``i`` of a row runs under ``RandomStrategy(seed=i)`` with the
row's kernel options: it is rebuilt by its replay token alone. When the
explorer room provides a strategy of the row's name, a later version runs
it instead; until then every row is explored by random walk, which is
never exhaustive, and the found text says so (catalog R3).

Rules:

* R1: the result does not depend on ``jobs`` nor on the order chunks
  finish in (deterministic split and merge).
* R2: a pending row (not yet modelled) is reported as ``pending`` and is
  never a pass; ``strict`` makes pending rows fail the check.
* R3: a scenario that crashes the simulator itself (not a finding) is a
  ``error`` row with the message, not a crash of the command.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import Any

from ..kernel.findings import Finding
from ..kernel.runtime import Kernel
from .catalog import Catalog, ClaimScenario, Found, discover

#: Most chunks a row is split into per worker (smaller chunks balance better,
#: larger ones spend less on inter-process traffic).
CHUNKS_PER_JOB = 2
#: Keep at most this many distinct lock cycles per row.
MAX_CHAINS = 8


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


@dataclass(frozen=True)
class RowResult:
    """The verdict of one catalog row."""

    row: ClaimScenario
    #: "match", "mismatch", "pending", "skipped" or "error".
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
    #: Execution index of that counterexample (-1 when none).
    first_execution: int = -1
    #: The finding of the first counterexample, as JSON.
    first: dict[str, Any] | None = None
    #: kind -> first execution index showing it.
    first_by_kind: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == "match"

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
            "executions": self.executions,
            "steps": self.steps,
            "strategy": self.strategy,
            "exhaustive": self.exhaustive,
            "why": self.why,
            "token": self.token,
            "first_execution": self.first_execution,
            "first_by_kind": dict(sorted(self.first_by_kind.items())),
            "replay": self.replay,
            "first": self.first,
        }


# ---------------------------------------------------------------- workers

_CATALOGS: dict[tuple[str, ...], Catalog] = {}


def _catalog(extra_dirs: tuple[str, ...]) -> Catalog:
    cat = _CATALOGS.get(extra_dirs)
    if cat is None:
        cat = _CATALOGS[extra_dirs] = discover(extra_dirs)
    return cat


def run_executions(row: ClaimScenario, start: int, stop: int) -> ChunkResult:
    """Run executions ``start .. stop-1`` of ``row`` (execution i: random seed i)."""
    assert row.scenario is not None
    firsts: dict[str, tuple[int, dict[str, Any]]] = {}
    errors: set[str] = set()
    chains: list[tuple[str, ...]] = []
    steps = 0
    opts = dict(row.kernel_options)
    for i in range(start, stop):
        ex = Kernel(seed=i, **opts).run(row.scenario)
        steps += ex.steps
        for f in ex.findings:
            if f.kind not in firsts:
                firsts[f.kind] = (i, f.to_json())
            if f.is_error:
                errors.add(f.kind)
            if f.kind == "circular-locking":
                c = chain_of(f)
                if c and c not in chains and len(chains) < MAX_CHAINS:
                    chains.append(c)
    return ChunkResult(row.key, start, stop, firsts, tuple(sorted(errors)), tuple(chains), steps)


def _run_chunk(extra_dirs: tuple[str, ...], key: str, start: int, stop: int) -> ChunkResult:
    """Worker entry point: rebuild the catalog in this process and run one chunk."""
    row = _catalog(extra_dirs).get(key)
    try:
        return run_executions(row, start, stop)
    except Exception as exc:  # noqa: BLE001 - a simulator crash becomes an error row (R3)
        return ChunkResult(key, start, stop, {}, (), (), 0, error=f"{type(exc).__name__}: {exc}")


def split(budget: int, jobs: int) -> list[tuple[int, int]]:
    """Deterministic split of ``range(budget)`` into consecutive chunks."""
    n = max(1, min(budget, jobs * CHUNKS_PER_JOB))
    size = -(-budget // n)
    return [(s, min(budget, s + size)) for s in range(0, budget, size)]


# ---------------------------------------------------------------- merging


def _found_text(found: Found, executions: int, strategy: str, exhaustive: bool, first: dict[str, int]) -> str:
    scope = f"{executions} executions, {strategy}" + ("; exhaustive" if exhaustive else "; not exhaustive")
    errors = sorted(found.error_kinds)
    infos = sorted(found.kinds - found.error_kinds)
    if not errors:
        base = "clean" + (" + " + ", ".join(infos) if infos else "")
        return f"{base} ({scope})"
    parts = [f"{k} (first: #{first[k]})" for k in errors] + infos
    return ", ".join(parts) + f" ({scope})"


def merge(row: ClaimScenario, chunks: Sequence[ChunkResult], budget: int) -> RowResult:
    """Reduce a row's chunk results (any order) to its verdict."""
    chunks = sorted(chunks, key=lambda c: c.start)
    failed = [c for c in chunks if c.error]
    if failed:
        return RowResult(row, "error", why=failed[0].error, strategy="random", executions=failed[0].start)
    firsts: dict[str, tuple[int, dict[str, Any]]] = {}
    errors: set[str] = set()
    chains: list[tuple[str, ...]] = []
    steps = 0
    for c in chunks:
        steps += c.steps
        for kind, (i, fj) in c.firsts.items():
            if kind not in firsts or i < firsts[kind][0]:
                firsts[kind] = (i, fj)
        errors.update(c.error_kinds)
        for ch in c.chains:
            if ch not in chains and len(chains) < MAX_CHAINS:
                chains.append(ch)
    found = Found(kinds=frozenset(firsts), error_kinds=frozenset(errors), chains=tuple(chains))
    assert row.expected is not None
    ok, why = row.expected.match(found)
    # The counterexample: the first unexpected error if any, else the first
    # error, else the first asserted info kind.
    unexpected = sorted(errors - row.expected.kinds, key=lambda k: firsts[k][0])
    candidates = unexpected or sorted(errors, key=lambda k: firsts[k][0])
    if not candidates:
        candidates = sorted((k for k in row.expected.kinds if k in firsts), key=lambda k: firsts[k][0])
    first = firsts[candidates[0]] if candidates else None
    first_by_kind = {k: v[0] for k, v in firsts.items()}
    return RowResult(
        row,
        "match" if ok else "mismatch",
        found=found,
        found_text=_found_text(found, budget, "random", False, first_by_kind),
        executions=budget,
        steps=steps,
        strategy="random",
        exhaustive=False,
        why=why,
        token=str(first[1].get("token", "")) if first else "",
        first_execution=first[0] if first else -1,
        first=first[1] if first else None,
        first_by_kind=first_by_kind,
    )


# ---------------------------------------------------------------- driver

Progress = Callable[[str, int], None]


@dataclass(frozen=True)
class CheckResult:
    """The verdicts of a set of rows, in catalog order."""

    rows: list[RowResult]
    strict: bool = False

    @property
    def mismatches(self) -> list[RowResult]:
        return [r for r in self.rows if r.status in ("mismatch", "error")]

    @property
    def pending(self) -> list[RowResult]:
        return [r for r in self.rows if r.status == "pending"]

    @property
    def ok(self) -> bool:
        """True when every modelled verdict matched (and, if strict, nothing is pending)."""
        return not self.mismatches and not (self.strict and self.pending)

    def to_json(self) -> dict[str, Any]:
        counts: dict[str, int] = {}
        for r in self.rows:
            counts[r.status] = counts.get(r.status, 0) + 1
        return {
            "ok": self.ok,
            "strict": self.strict,
            "counts": dict(sorted(counts.items())),
            "rows": [r.to_json() for r in self.rows],
        }


def _pool(jobs: int) -> ProcessPoolExecutor:
    # spawn: workers start clean (no greenlets, no progress-bar thread inherited).
    return ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn"))


def check(
    rows: Sequence[ClaimScenario],
    *,
    jobs: int = 2,
    budget: int | None = None,
    extra_dirs: Sequence[str] = (),
    skip_slow: bool = False,
    strict: bool = False,
    progress: Progress | None = None,
) -> CheckResult:
    """Explore ``rows`` and compare each with its expected verdict.

    ``budget`` overrides every row's budget; ``jobs`` > 1 runs chunks in
    worker processes (which rebuild the catalog from the package and
    ``extra_dirs``: rows must come from discovered modules). ``jobs == 1``
    runs in this process (scenarios may then be any callable).
    ``progress(key, executions_done)`` is called as chunks finish.
    """
    if jobs < 1:
        raise ValueError(f"jobs must be at least 1, got {jobs}")
    extra = tuple(os.path.abspath(d) for d in extra_dirs)
    work: list[tuple[ClaimScenario, int, int]] = []
    budgets: dict[str, int] = {}
    results: dict[str, RowResult] = {}
    for row in rows:
        if not row.modelled:
            results[row.key] = RowResult(row, "pending", why=row.status)
            continue
        if skip_slow and row.slow:
            results[row.key] = RowResult(row, "skipped", why="slow row (run without --skip-slow)")
            continue
        b = budget if budget is not None else row.budget
        budgets[row.key] = b
        for start, stop in split(b, jobs):
            work.append((row, start, stop))
    chunks: dict[str, list[ChunkResult]] = {k: [] for k in budgets}
    if jobs == 1 or len(work) <= 1:
        for row, start, stop in work:
            try:
                c = run_executions(row, start, stop)
            except Exception as exc:  # noqa: BLE001 - R3
                c = ChunkResult(row.key, start, stop, {}, (), (), 0, error=f"{type(exc).__name__}: {exc}")
            chunks[row.key].append(c)
            if progress:
                progress(row.key, stop - start)
    else:
        with _pool(jobs) as pool:
            futures: list[Future[ChunkResult]] = [
                pool.submit(_run_chunk, extra, row.key, start, stop) for row, start, stop in work
            ]
            for fut in as_completed(futures):
                c = fut.result()
                chunks[c.key].append(c)
                if progress:
                    progress(c.key, c.stop - c.start)
    by_key = {r.key: r for r in rows}
    for key, cs in chunks.items():
        results[key] = merge(by_key[key], cs, budgets[key])
    return CheckResult([results[r.key] for r in rows], strict=strict)
