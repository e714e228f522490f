"""The explorer: run a scenario under many schedules and report honestly.

``explore(scenario, strategy=..., budget=...)`` runs one fresh
:class:`~dmabufsim.Kernel` per execution under an exploration strategy
(random walk, PCT, DFS / iterative context bounding, DPOR, or the default
portfolio), keeps every finding once (by signature) with the replay token of
the execution that found it -- shrunk to the smallest schedule that still
shows it -- and the strategy that found it, and returns a :class:`Report`.

Rules:

* R1 (three verdicts, never confused): ``finding`` (at least one bug, each
  with a token); ``exhausted`` (no bug, and a systematic strategy explored
  its whole space -- the bound is stated: "dpor, preemption bound 2, 1,312
  executions, exhausted"); ``inconclusive`` (no bug, and a budget --
  executions, wall time, an interruption -- ended the search first). A
  budget running out is never a pass: exit code 3, ``ok`` is False.
  Without a bug, the report also names the strongest guarantee reached
  (``Report.assurance``, report R4: proved, exhausted up to ``k``
  preemptions, ``N`` samples), whatever the verdict.
* R2 (dedup): findings are kept once per signature, with the first
  execution (lowest index) that found them, and counted. A later
  execution's report of a signature the job already holds is made without
  its text, stacks and token (``Kernel.known_findings``): only the count is kept.
* R3 (expected): findings whose kind or signature the caller expects do not
  make the run fail; an expected finding never found does (when the space
  was exhausted) or leaves it inconclusive.
* R4 (budgets): ``budget`` executions, ``time_budget`` seconds of wall time,
  ``max_steps`` scheduling points without progress per execution (more is
  a ``livelock`` finding; ``kernel/progress.py``). Wall time is the
  explorer's, never the model's. ``time_budget`` is a hard limit: an execution still running at the deadline is stopped
  (runtime R9, watchdog W4) and dropped, and the replay checks, shrinking
  and confirmations that would start after it are skipped (the findings
  keep their unshrunk tokens).
* R5 (replay check): every finding's token is replayed once; a replay that
  does not reproduce the trace digest is reported as uncontrolled
  nondeterminism in the scenario, with the first choice where it diverged.
* R6 (info): findings of severity ``info`` are kept but are not bugs.
* R7 (lockdep graph): by default the executions of one job share one
  lockdep graph, as the kernel's lives for the whole boot: two orders seen
  in different executions close a cycle. Such a report's token replays the
  execution that closed the cycle, whose report needs the accumulated graph
  (so it is not shrunk). Replays, shrinking and confirmations use a fresh
  graph.
* R8 (confirmation): each lockdep cycle gets a guided attempt to become a
  concrete ``deadlock`` (``guided.py``): confirmed with its own token, or
  "could not within N executions". It is attached to the cycle's finding
  and never changes the verdict.
* R9 (checkpoints belong to one exploration): a checkpoint records its
  format version, the package version, the scenario's identity (name and
  code digest, ``kernel.identity``), every phase's strategy with all its
  parameters, the kernel options, and whether its systematic search ran
  with reduction (``kernel/reduction.py``); ``resume`` refuses a checkpoint
  that differs in any of them, or that is missing, truncated or corrupt,
  with one line (a ``UsageError``) -- never a silent fresh start, and never
  the checkpoint's strategy in place of the requested one. The budget is
  not part of it: a resumed run may go further.
* R10 (soft lockup): a ``soft-lockup`` finding (watchdog W1) depends on the
  wall clock: it is neither replay-checked (R5) nor shrunk; its token
  replays the schedule up to the stuck thread.
* R11 (interruption): an interrupted run (Ctrl-C, SIGTERM) skips the replay
  checks, shrinking and confirmations: it reports at once what it holds.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from typing import Any

from ..kernel.errors import UsageError
from .base import ExploreStrategy
from .cluster import (
    ENV_CLUSTER,
    checkpoint_kind,
    checkpoint_shares,
    connect,
    load_osplit,
    load_split,
    run_osplit,
    run_parallel,
    run_split,
)
from .job import (
    CHECKPOINT_VERSION,
    PORTFOLIO_PCT,
    PORTFOLIO_RANDOM,
    STRATEGIES,
    JobOptions,
    Progress,
    _Run,
    checkpoint_identity,
    job_checkpoint,
    load_checkpoint,
    make_strategy,
    plan,
    read_checkpoint,
    run_job,
    save_checkpoint,
    terminal_state,
    with_lockdep_graph,
)
from .options import ExploreOptions, options_from
from .race_stats import RaceStats
from .report import (
    EXIT_FINDING,
    EXIT_INCONCLUSIVE,
    EXIT_OK,
    VERDICTS,
    Assurance,
    ExploredFinding,
    Guarantee,
    PhaseResult,
    Report,
    assurance_of,
)
from .shrink import replay, shrink

__all__ = [
    "CHECKPOINT_VERSION", "EXIT_FINDING", "EXIT_INCONCLUSIVE", "EXIT_OK", "PORTFOLIO_PCT", "PORTFOLIO_RANDOM",
    "STRATEGIES", "VERDICTS", "Assurance", "ExploreOptions", "ExploredFinding", "Guarantee", "JobOptions",
    "PhaseResult", "Progress", "Report", "_Run", "checkpoint_identity", "explore", "load_checkpoint",
    "make_strategy", "plan", "read_checkpoint", "run_job", "save_checkpoint", "terminal_state",
    "with_lockdep_graph",
]

def _scenario_name(scenario: Callable[..., Any]) -> str:
    mod = getattr(scenario, "__module__", "") or ""
    return f"{mod}:{getattr(scenario, '__qualname__', repr(scenario))}"


def explore(
    scenario: Callable[..., Any],
    strategy: str | ExploreStrategy | None = None,
    options: ExploreOptions | None = None,
    **kw: Any,
) -> Report:
    """Explore the schedules of ``scenario`` and report (the catalog's entry point).

    ``strategy``: ``"random"``, ``"pct"`` (``depth``), ``"dfs"``, ``"icb"``,
    ``"dpor"`` (both with ``preemption_bound``), an :class:`ExploreStrategy`,
    or None for the portfolio. The rest is an :class:`ExploreOptions`, given
    whole (``options=``) or as its fields' keywords (both: the keywords win):
    ``budget`` executions, ``time_budget`` seconds, ``max_steps`` per
    execution (R4). ``jobs`` worker processes of a local Dask cluster, or
    ``cluster``: the address of a running one (``cluster.py``,
    ``docs/cluster.md``). ``stop_on_first``: end at the first unexpected bug
    (or once every expected finding was seen), else collect all.
    ``expected``: finding kinds or signatures the scenario expects (R3).
    ``kernel_options``: passed to every ``Kernel`` (e.g. ``{"lockdep":
    False}``). ``checkpoint``/``resume``: save / continue a long systematic
    run (with several jobs each keeps its own file, ``CHECKPOINT.jobJ-of-N``,
    and a resumed run has as many jobs, on a cluster of any size).
    ``lockdep_graph``: one lockdep graph per job across its executions (R7).
    ``confirm_cycles``: try to turn each lockdep cycle into a concrete
    deadlock (``guided.py``, R8). ``should_stop``: polled before every
    execution (one job only); True interrupts the run as a Ctrl-C would
    (R11). ``reduction``: the systematic strategies run with Lipton
    reduction (``kernel/reduction.py``); False turns it off (``explore
    --no-reduction``). ``race_stats``: count optimal DPOR's races by step
    pair and object (``race_stats.py``, ``explore --race-stats``), in
    ``Report.races``. Returns a :class:`Report`.
    """
    o = options_from(options, kw)
    if o.budget < 1:
        raise UsageError(f"budget must be at least 1 execution, got {o.budget}")
    if o.jobs < 1:
        raise UsageError(f"jobs must be at least 1, got {o.jobs}")
    exp = tuple(o.expected)
    opts = dict(o.kernel_options or {})
    if not o.reduction:
        opts["reduction"] = False
    if o.max_steps is not None:
        opts["max_steps"] = o.max_steps
    name = strategy.describe() if isinstance(strategy, ExploreStrategy) else (strategy or "portfolio")
    start = time.monotonic()
    if o.resume and not o.checkpoint:
        raise UsageError("resume needs the checkpoint file to resume (--checkpoint FILE)")
    identity: dict[str, Any] = {}
    split_resume = False
    deadline = None if o.time_budget is None else start + o.time_budget  # R4: a hard limit
    pkw: dict[str, Any] = {"seed": o.seed, "depth": o.depth, "preemption_bound": o.preemption_bound}
    cluster = o.cluster or os.environ.get(ENV_CLUSTER) or None
    shares = o.jobs
    if o.checkpoint:
        folder = os.path.dirname(os.path.abspath(o.checkpoint))
        if not os.path.isdir(folder):
            raise UsageError(f"cannot write checkpoint {o.checkpoint}: no such directory {folder}")
        fresh = plan(strategy, o.budget, **pkw)
        identity = checkpoint_identity(scenario, fresh, opts, o.lockdep_graph)
        split_kind = checkpoint_kind(o.checkpoint) if o.resume else None
        split_resume = split_kind is not None
        if split_kind == "dfs":  # R9 for a split DFS's checkpoint (cluster C8)
            load_split(o.checkpoint, identity)
        elif split_kind == "odpor":  # R9 for a split optimal DPOR search's checkpoint (cluster C9)
            load_osplit(o.checkpoint, identity)
        if o.resume and not split_resume:  # R9: refuse a foreign checkpoint here, before any job starts
            made = checkpoint_shares(o.checkpoint)
            if made is None:
                raise UsageError(f"nothing to resume: checkpoint {o.checkpoint} does not exist")
            shares = made  # cluster C1: as many jobs as it was made with, on any number of workers
            for f in (job_checkpoint(o.checkpoint, j, shares) for j in range(shares)):
                if os.path.exists(f):
                    read_checkpoint(f, identity)
    stats: RaceStats | None = None
    if o.race_stats and (shares > 1 or cluster):
        raise UsageError("race statistics need one process (jobs=1, no cluster): the search's races are its own")
    if o.race_stats and o.checkpoint:
        raise UsageError("race statistics count one search from its start: no checkpoint")
    if shares > 1 or cluster or split_resume:
        if isinstance(strategy, ExploreStrategy):
            raise UsageError("jobs > 1 needs a strategy by name (each worker builds its own)")
        engine = connect(o.jobs, cluster) if cluster else None
        if engine is not None and not (o.resume and o.checkpoint and not split_resume):
            shares = max(o.jobs, engine.workers)  # cluster C1: one job per worker of a running cluster
        resumed = bool(o.resume and o.checkpoint) and not split_resume  # a checkpoint of one process or jobs
        if strategy == "dfs" and not resumed:  # cluster C8: split dynamically, into pieces that hand work back
            run, phases = run_split(scenario, o, identity=identity, deadline=deadline, engine=engine)
        elif strategy == "odpor" and not resumed:  # cluster C9: pieces of one optimal DPOR search, in rounds
            run, phases = run_osplit(scenario, o, identity=identity, deadline=deadline, engine=engine)
        elif strategy == "dfs" and shares > 1:
            raise UsageError(f"checkpoint {o.checkpoint} was made by a DFS split into {shares} fixed jobs "
                             "(an older dmabufsim); a DFS on a cluster now splits dynamically and resumes only "
                             "its own checkpoint: start a new one")
        else:
            run, phases = run_parallel(scenario, strategy, o, shares=shares, identity=identity,
                                       deadline=deadline, engine=engine)
    else:
        phases = plan(strategy, o.budget, **pkw)
        stats = _race_stats(phases) if o.race_stats else None
        state = None
        if o.checkpoint and o.resume:
            state = load_checkpoint(o.checkpoint, phases, identity)
        run = run_job(
            scenario, phases, time_budget=o.time_budget, stop_on_first=o.stop_on_first, expected=exp,
            kernel_options=opts, coverage=o.coverage, progress=o.progress, checkpoint=o.checkpoint, state=state,
            lockdep_graph=o.lockdep_graph, identity=identity, deadline=deadline, should_stop=o.should_stop,
        )
    report = finish(run, phases, _scenario_name(scenario), name, exp, shares, time.monotonic() - start)
    if stats is not None:
        report.races = stats
    if run.reason == "interrupted":
        return report  # R11: report at once
    try:
        post_process(report, scenario, opts, shrink_findings=o.shrink_findings, check_replay=o.check_replay,
                     deadline=deadline)
        if o.confirm_cycles:
            confirm_findings(report, scenario, opts, budget=o.confirm_budget, seed=o.seed, deadline=deadline)
    except KeyboardInterrupt:  # R11: what was checked so far stands; the rest is left as found
        report.reason = "interrupted"
    return report


def _race_stats(phases: Sequence[tuple[ExploreStrategy, int]]) -> RaceStats:
    """Attach race statistics (``race_stats.py``) to the run's optimal DPOR phase."""
    from .odpor import OptimalDPOR

    for strat, _share in phases:
        if isinstance(strat, OptimalDPOR):
            stats = strat.race_stats = RaceStats()
            return stats
    raise UsageError("race statistics count optimal DPOR's races: use strategy odpor (--strategy odpor)")


def _past(deadline: float | None) -> bool:
    return deadline is not None and time.monotonic() >= deadline


def confirm_findings(
    report: Report, scenario: Callable[..., Any], opts: dict[str, Any], *, budget: int, seed: int,
    deadline: float | None = None,
) -> None:
    """R8: a lockdep-guided confirmation for each circular-locking finding with a chain
    (none started past ``deadline``; one the deadline cut short is dropped, R4)."""
    from .guided import confirm

    for ef in report.findings:
        if ef.kind != "circular-locking" or "chain" not in ef.finding.details:
            continue
        if ef.finding.title.startswith(("WARNING: HARDIRQ", "WARNING: possible irq")):
            continue  # irq inversions need an interrupt at the right time, not a lock order
        if _past(deadline):
            return
        c = confirm(scenario, ef.finding, budget=budget, seed=seed, kernel_options={**opts, "deadline": deadline})
        if c.confirmed or not _past(deadline):
            ef.confirmation = c


def finish(
    run: _Run,
    phases: Sequence[tuple[ExploreStrategy, int]] | Sequence[tuple[str, bool, str]],
    scenario: str,
    name: str,
    expected: tuple[str, ...],
    jobs: int,
    elapsed: float,
) -> Report:
    """Build the :class:`Report` of a run and decide its verdict (R1)."""
    findings = sorted(run.findings.values(), key=lambda f: (f.strategy, f.execution, f.signature))
    info = sorted(run.info.values(), key=lambda f: (f.strategy, f.execution, f.signature))
    rep = Report(
        scenario=scenario, strategy=name, findings=findings, info=info, executions=run.executions,
        elapsed=elapsed, reason=run.reason, phases=run.phases, coverage=run.coverage, expected=expected,
        jobs=jobs, nondeterminism=list(run.nondeterminism),
    )
    last = run.phases[-1] if run.phases else None
    if findings:
        rep.verdict = "finding"
    elif last is not None and last.exhausted and run.reason != "interrupted":
        rep.verdict = "exhausted"
        rep.bound = last.bound
        if name == "portfolio":
            rep.exhausted_by = last.strategy  # report R1a: a portfolio stays the portfolio
        else:
            rep.strategy = last.strategy  # the one strategy, with its parameters ("odpor()")
    else:
        rep.verdict = "inconclusive"
        if not rep.reason or rep.reason == "space exhausted":
            rep.reason = "execution budget"
    if not findings:  # report R4: what the clean run is worth
        rep.assurance = assurance_of(run.phases, run.executions, name, bool(run.nondeterminism))
    return rep


def first_divergent_step(scenario: Callable[..., Any], choices: list[int], opts: dict[str, Any]) -> str:
    """Replay twice with the trace recorded; describe the first event where the two differ ("" if none)."""
    rec = {**opts, "record_trace": True}
    a = replay(scenario, choices, **rec).execution.events or []
    b = replay(scenario, choices, **rec).execution.events or []
    for x, y in zip(a, b, strict=False):
        if x != y:
            return f"first divergent step {x.step}: {x} / {y}"
    if len(a) != len(b):
        n = min(len(a), len(b))
        return f"first divergent step {n + 1}: one replay has {len(a)} events, the other {len(b)}"
    return ""


def post_process(
    report: Report,
    scenario: Callable[..., Any],
    opts: dict[str, Any],
    *,
    shrink_findings: bool = True,
    check_replay: bool = True,
    deadline: float | None = None,
) -> None:
    """Replay-check (R5) and shrink each finding's schedule (not a soft lockup's, R10; nothing
    past ``deadline``, R4: a replay the deadline stopped proves nothing either way)."""
    timed = {**opts, "deadline": deadline} if deadline is not None else opts
    for ef in report.findings:
        if ef.kind == "soft-lockup" or _past(deadline):
            continue
        if check_replay:
            from ..kernel.token import decode

            r = replay(scenario, decode(ef.original_token), **timed)
            if r.execution.outcome == "time-limit":
                continue
            if r.execution.trace_digest != ef.trace_digest or r.diverged_at is not None:
                ef.replay_ok = False
                ef.diverged_at = r.diverged_at
                where = f"choice {r.diverged_at}" if r.diverged_at is not None else "the trace digest"
                step = first_divergent_step(scenario, decode(ef.original_token), opts)
                if step:
                    where += f" ({step})"
                report.nondeterminism.append(
                    f"the replay of {ef.kind} ({ef.signature}) diverged at {where}: the scenario has "
                    "uncontrolled nondeterminism (wall clock, unseeded randomness, id() or set ordering)"
                )
                continue
        if shrink_findings:
            from ..kernel.token import decode

            res = shrink(scenario, decode(ef.original_token), ef.signature, **timed)
            if res.shrunk:
                ef.token = res.token
                ef.shrunk = True
                ef.preemptions = res.preemptions
                ef.steps = res.steps
