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
import pickle
import time
from collections import ChainMap
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from ..kernel.errors import UsageError
from ..kernel.execution import Execution
from ..kernel.findings import Finding
from ..kernel.identity import scenario_id
from ..kernel.runtime import Kernel
from ..kernel.strategy import FirstStrategy
from .base import ExploreStrategy
from .coverage import Coverage, Recorder
from .dfs import DFS, ICB
from .dpor import DeepeningDPOR
from .odpor import OptimalDPOR
from .pct import PCT
from .random_walk import RandomWalk
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
    "EXIT_FINDING", "EXIT_INCONCLUSIVE", "EXIT_OK", "STRATEGIES", "VERDICTS", "Assurance", "ExploredFinding",
    "Guarantee", "PhaseResult", "Report", "explore", "make_strategy", "plan", "run_job", "terminal_state",
]

STRATEGIES = ("random", "pct", "dfs", "icb", "dpor", "odpor", "portfolio")

#: Share of the execution budget of each portfolio phase (the rest goes to DPOR).
PORTFOLIO_RANDOM = 0.1
PORTFOLIO_PCT = 0.4

#: A checkpoint file's format version (2: it records what it belongs to, R9).
CHECKPOINT_VERSION = 2


def make_strategy(
    name: str, *, seed: int = 0, depth: int = 3, preemption_bound: int | None = None
) -> ExploreStrategy:
    """A strategy by name: random, pct, dfs, icb, dpor, odpor.

    ``dpor`` deepens its preemption bound (``dpor`` R7): 0, 1, ... up to
    ``preemption_bound``; without one, 0, 1, 2, then one unbounded search;
    a bound that cuts nothing ends it early. A single bounded search is
    ``DPOR(bound)``.
    """
    if name == "random":
        return RandomWalk(seed)
    if name == "pct":
        return PCT(seed, depth)
    if name == "dfs":
        return DFS(preemption_bound)
    if name == "icb":
        return ICB(3 if preemption_bound is None else preemption_bound)
    if name == "dpor":
        return DeepeningDPOR(preemption_bound)
    if name == "odpor":
        return OptimalDPOR(preemption_bound)
    raise UsageError(f"unknown strategy {name!r}; known: {', '.join(STRATEGIES)}")


def plan(
    strategy: str | ExploreStrategy | Sequence[tuple[ExploreStrategy, int]] | None,
    budget: int,
    *,
    seed: int = 0,
    depth: int = 3,
    preemption_bound: int | None = None,
) -> list[tuple[ExploreStrategy, int]]:
    """The phases of a run: (strategy, execution budget) pairs.

    The default portfolio (no strategy named): a short random burst, then
    PCT, then DPOR deepening its preemption bound up to 2 (or the given
    bound).
    """
    if strategy is None or strategy == "portfolio":
        r = max(1, min(200, int(budget * PORTFOLIO_RANDOM)))
        p = max(1, int(budget * PORTFOLIO_PCT))
        d = max(1, budget - r - p)
        pb = 2 if preemption_bound is None else preemption_bound
        return [(RandomWalk(seed), r), (PCT(seed, depth), p), (DeepeningDPOR(pb), d)]
    if isinstance(strategy, ExploreStrategy):
        return [(strategy, budget)]
    if isinstance(strategy, str):
        return [(make_strategy(strategy, seed=seed, depth=depth, preemption_bound=preemption_bound), budget)]
    return list(strategy)


def _matches(f: Finding, expected: Sequence[str]) -> bool:
    return f.kind in expected or f.signature in expected


def terminal_state(k: Kernel, ex: Execution) -> tuple[Any, ...]:
    """An execution's end state for audits: outcome, finding signatures, the scenario's state.

    A scenario exposes its own final state by storing a zero-argument
    callable returning a hashable value in ``k.ext["explore.state"]``.
    """
    fn = k.ext.get("explore.state")
    user = fn() if callable(fn) else None
    return (ex.outcome, tuple(sorted(f.signature for f in ex.findings)), user)


@dataclass
class _Run:
    """Mutable state of one job's run (picklable for checkpoints and parallel merge)."""

    findings: dict[str, ExploredFinding] = field(default_factory=dict)
    info: dict[str, ExploredFinding] = field(default_factory=dict)
    phases: list[PhaseResult] = field(default_factory=list)
    executions: int = 0
    coverage: Coverage = field(default_factory=Coverage)
    reason: str = ""
    states: set[tuple[Any, ...]] = field(default_factory=set)
    phase_index: int = 0
    phase_done: int = 0
    nondeterminism: list[str] = field(default_factory=list)


Progress = Callable[[int, int, float, str], None]


def run_job(
    scenario: Callable[..., Any],
    phases: list[tuple[ExploreStrategy, int]],
    *,
    job: int = 0,
    jobs: int = 1,
    time_budget: float | None = None,
    stop_on_first: bool = True,
    expected: Sequence[str] = (),
    kernel_options: dict[str, Any] | None = None,
    coverage: bool = True,
    collect_states: bool = False,
    progress: Progress | None = None,
    checkpoint: str | None = None,
    checkpoint_every: int = 200,
    state: _Run | None = None,
    deadline: float | None = None,
    lockdep_graph: bool = False,
    should_stop: Callable[[], bool] | None = None,
    identity: dict[str, Any] | None = None,
) -> _Run:
    """Run this job's share of the phases (the explorer's loop; see :func:`explore`).

    ``should_stop``: polled before every execution; True ends the job as
    ``interrupted`` (how ``--jobs`` children hear of a Ctrl-C: they ignore
    SIGINT, so the interruption never lands inside a kthread or a queue).
    ``identity``: what the checkpoint belongs to (R9, :func:`checkpoint_identity`).
    """
    opts = with_lockdep_graph(kernel_options or {}) if lockdep_graph else dict(kernel_options or {})
    run = state if state is not None else _Run()
    start = time.monotonic()
    if deadline is None and time_budget is not None:
        deadline = start + time_budget
    cov = run.coverage if coverage else None
    known = ChainMap(run.findings, run.info)  # the signatures this job holds (live)
    try:
        for pi in range(run.phase_index, len(phases)):
            strat, share = phases[pi]
            if pi > run.phase_index or len(run.phases) <= pi:
                run.phase_done = 0
            run.phase_index = pi
            if len(run.phases) <= pi:
                run.phases.append(PhaseResult(strat.describe()))
                if jobs > 1 and strat.systematic:
                    strat.split(job, jobs)
            phase = run.phases[pi]
            t0 = time.monotonic() - phase.elapsed
            # PCT R2: a calibration execution (job 0 counts it) fixes k for every job.
            if getattr(strat, "wants_calibration", False):
                k = Kernel(strategy=Recorder(FirstStrategy(), cov), deadline=deadline, **opts)
                if cov is not None:
                    cov.attach(k)
                ex = k.run(scenario)
                if ex.outcome == "time-limit":  # R4: the time ran out in the calibration itself
                    run.reason = "time budget"
                    break
                strat.calibrate(len(ex.choices))  # type: ignore[attr-defined]
                phase.strategy = strat.describe()
                if job == 0:
                    _record(run, phase, ex, k, f"{strat.name} calibration", -1, expected, collect_states)
                    run.phase_done += 1
            # the systematic strategies explore the reduced schedules (kernel/reduction.py)
            popts = {**opts, "reduction": True} if strat.reduction and opts.get("reduction", True) else opts
            # randomised strategies: execution i belongs to job i % jobs
            indices_step = 1 if strat.systematic else jobs
            i = run.phase_done * indices_step + (0 if strat.systematic else job)
            while True:
                if run.phase_done >= (share if strat.systematic or jobs == 1 else _share(share, job, jobs)):
                    run.reason = "execution budget"
                    break
                if deadline is not None and time.monotonic() >= deadline:
                    run.reason = "time budget"
                    break
                if should_stop is not None and should_stop():
                    raise KeyboardInterrupt
                strat.index = i
                if strat.complete or not strat.new_execution():
                    strat.complete = True
                    break
                # the Recorder only counts preemptions for coverage: skip the wrapper without it
                k = Kernel(strategy=Recorder(strat, cov) if cov is not None else strat, deadline=deadline, **popts)
                k.known_findings = known  # R2: a finding already held needs no text (Kernel.wants_text)
                strat.attach(k)
                if cov is not None:
                    cov.attach(k)
                ex = k.run(scenario)
                if _interrupted(ex):
                    raise KeyboardInterrupt
                if ex.outcome == "time-limit":  # R4: stopped at the deadline; it counts for nothing
                    run.reason = "time budget"
                    break
                if strat.error:
                    run.nondeterminism.append(strat.error)
                    run.reason = "nondeterministic scenario"
                    break
                strat.end_execution(ex)
                i += indices_step
                if getattr(strat, "discard", False):
                    continue
                run.phase_done += 1
                new = _record(run, phase, ex, k, strat.describe(), i - indices_step, expected, collect_states)
                phase.elapsed = time.monotonic() - t0
                if new and phase.first_finding_at is None:
                    phase.first_finding_at = phase.executions
                    phase.first_finding_time = phase.elapsed
                if progress is not None:
                    progress(run.executions, len(run.findings), time.monotonic() - start, strat.name)
                if checkpoint and strat.systematic and run.phase_done % checkpoint_every == 0:
                    save_checkpoint(checkpoint, run, phases, identity)
                if stop_on_first and _should_stop(run, expected):
                    run.reason = "first finding"
                    break
            phase.elapsed = time.monotonic() - t0
            _close_phase(phase, strat)
            if strat.complete:
                run.reason = "space exhausted"
            halted = run.reason in ("time budget", "nondeterministic scenario")
            if (stop_on_first and _should_stop(run, expected)) or halted:
                break
    except KeyboardInterrupt:
        run.reason = "interrupted"
        if run.phases:
            strat = phases[run.phase_index][0]
            _close_phase(run.phases[-1], strat)
            run.phases[-1].exhausted = run.phases[-1].proved = False
    if checkpoint:  # an exhausted share too: a resumed job then knows it has nothing left
        save_checkpoint(checkpoint, run, phases, identity)
    return run


def _close_phase(phase: PhaseResult, strat: ExploreStrategy) -> None:
    """What a phase covered: exhaustion, its bound, and what it proved (report R4)."""
    phase.exhausted = strat.complete
    phase.bound = strat.bound()
    phase.sleep_blocked = getattr(strat, "sleep_blocked", 0)
    phase.bound_reached = strat.bound_reached()
    phase.proved = strat.proved()
    phase.dropped = strat.dropped()
    phase.one_per_trace = strat.one_per_trace and not getattr(strat, "redundant", 0)
    if strat.systematic:
        phase.strategy = strat.describe()  # a deepening search names the bound it reached


def with_lockdep_graph(kernel_options: dict[str, Any]) -> dict[str, Any]:
    """Kernel options sharing one lockdep graph across the executions of a job (R7).

    Nothing changes when lockdep is off or the caller passed a graph of its own.
    """
    opts = dict(kernel_options)
    if opts.get("lockdep") is False:
        return opts
    inner = dict(opts.get("options") or {})
    if "lockdep_graph" not in inner:
        from ..locking.lockdep_graph import LockGraph

        inner["lockdep_graph"] = LockGraph()
    opts["options"] = inner
    return opts


def _interrupted(ex: Execution) -> bool:
    """A Ctrl-C that landed inside a kthread: the runtime made it an ``exception`` finding (R6); undo that."""
    return any(f.kind == "exception" and f.details.get("type") == "KeyboardInterrupt" for f in ex.findings)


def _should_stop(run: _Run, expected: Sequence[str]) -> bool:
    """Stop-on-first: at an unexpected bug, or once every expected finding was seen (R3)."""
    if not run.findings:
        return False
    if any(not f.expected for f in run.findings.values()):
        return True
    if not expected:
        return True
    got = {f.finding.kind for f in run.findings.values()} | set(run.findings)
    return all(e in got for e in expected)


def _share(share: int, job: int, jobs: int) -> int:
    return share // jobs + (1 if job < share % jobs else 0)


def _record(
    run: _Run,
    phase: PhaseResult,
    ex: Execution,
    k: Kernel,
    strategy: str,
    index: int,
    expected: Sequence[str],
    collect_states: bool,
) -> bool:
    run.executions += 1
    phase.executions += 1
    if collect_states:
        run.states.add(terminal_state(k, ex))
    new = False
    for f in ex.findings:
        table = run.findings if f.is_error else run.info
        old = table.get(f.signature)
        if old is None:
            table[f.signature] = ExploredFinding(
                finding=f,
                token=ex.token,
                original_token=ex.token,
                strategy=strategy,
                execution=index,
                expected=_matches(f, expected),
                preemptions=ex.preemptions,
                original_preemptions=ex.preemptions,
                steps=ex.steps,
                trace_digest=ex.trace_digest,
            )
            new = new or f.is_error
        else:
            old.occurrences += 1
            if index < old.execution and strategy == old.strategy:
                # keep the lowest index: the same finding whatever the split among jobs (R2)
                table[f.signature] = replace(
                    old, finding=f if f.token else f.with_token(ex.token), token=ex.token,
                    original_token=ex.token, execution=index,
                    preemptions=ex.preemptions, original_preemptions=ex.preemptions, steps=ex.steps,
                    trace_digest=ex.trace_digest,
                )
    return new


def _option_text(v: Any) -> str:
    """Kernel options as deterministic text: plain values by repr, objects by type (never by id())."""
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k!r}: {_option_text(v[k])}" for k in sorted(v, key=str)) + "}"
    if isinstance(v, (list, tuple)):
        return "(" + ", ".join(_option_text(x) for x in v) + ")"
    if isinstance(v, (str, int, float, bool, type(None))):
        return repr(v)
    return f"<{type(v).__qualname__}>"


def checkpoint_identity(
    scenario: Callable[..., Any],
    phases: Sequence[tuple[ExploreStrategy, int]],
    kernel_options: dict[str, Any],
    lockdep_graph: bool,
) -> dict[str, Any]:
    """What a checkpoint belongs to (R9); ``phases`` must be fresh (their descriptions are their parameters)."""
    from .. import __version__

    sid = scenario_id(scenario)
    return {
        "format": CHECKPOINT_VERSION,
        "package": __version__,
        "scenario": sid.name,
        "code": sid.code,
        "strategies": [s.identity() for s, _ in phases],
        "kernel_options": _option_text(kernel_options),
        "lockdep_graph": lockdep_graph,
        # the systematic strategies' schedules depend on it (kernel/reduction.py): a DFS stack
        # recorded with it cannot be replayed without it, nor the reverse
        "reduction": kernel_options.get("reduction", True) is not False and any(s.systematic for s, _ in phases),
    }


def _refusal(path: str, saved: dict[str, Any], want: dict[str, Any]) -> str | None:
    """The one line refusing to resume ``saved`` as ``want`` (R9), or None when they match."""
    if saved.get("scenario") != want["scenario"]:
        return (f"checkpoint {path} belongs to another scenario: it was made for {saved.get('scenario')}, "
                f"not {want['scenario']}")
    if saved.get("code") != want["code"]:
        return (f"checkpoint {path} was made for another version of {want['scenario']}: the code of its "
                "module changed since; start a new checkpoint")
    if saved.get("strategies") != want["strategies"]:
        return (f"checkpoint {path} was made with strategy {' + '.join(saved.get('strategies') or [])}, "
                f"not {' + '.join(want['strategies'])}; resume it with the same strategy and parameters")
    if saved.get("kernel_options") != want["kernel_options"] or saved.get("lockdep_graph") != want["lockdep_graph"]:
        return (f"checkpoint {path} was made with kernel options {saved.get('kernel_options')}"
                f"{'' if saved.get('lockdep_graph') else ' (no shared lockdep graph)'}, not "
                f"{want['kernel_options']}{'' if want['lockdep_graph'] else ' (no shared lockdep graph)'}")
    if bool(saved.get("reduction")) != want["reduction"]:
        made = "with" if saved.get("reduction") else "without"
        return (f"checkpoint {path} was made {made} reduction of its systematic search, this run is "
                f"{'with' if want['reduction'] else 'without'} (explore --no-reduction); start a new checkpoint "
                "or resume it as it was made")
    if saved.get("package") != want["package"]:
        return (f"checkpoint {path} was made by dmabufsim {saved.get('package')}, this is {want['package']}; "
                "start a new checkpoint")
    return None


def save_checkpoint(
    path: str, run: _Run, phases: list[tuple[ExploreStrategy, int]], identity: dict[str, Any] | None = None
) -> None:
    """Write the run and its strategies' state (atomically: temp file, then rename), with ``identity`` (R9)."""
    data = {
        "version": CHECKPOINT_VERSION,
        "identity": identity or {},
        "run": run,
        "strategies": [(type(s).__name__, s.state(), n) for s, n in phases],
    }
    tmp = f"{path}.tmp"
    with open(tmp, "wb") as fh:
        pickle.dump(data, fh)
    os.replace(tmp, path)


def read_checkpoint(path: str, identity: dict[str, Any]) -> dict[str, Any]:
    """Read a checkpoint and check it belongs to ``identity`` (R9); every failure is one UsageError line."""
    try:
        with open(path, "rb") as fh:
            data = pickle.load(fh)  # the user's own checkpoint file
    except FileNotFoundError:
        raise UsageError(f"nothing to resume: checkpoint {path} does not exist") from None
    except OSError as exc:
        raise UsageError(f"cannot read checkpoint {path}: {exc.strerror}") from None
    except Exception as exc:  # noqa: BLE001 - unpickling damaged bytes can raise almost anything
        raise UsageError(f"checkpoint {path} is truncated or corrupt ({type(exc).__name__}); "
                         "start a new checkpoint") from None
    if not isinstance(data, dict) or not isinstance(data.get("run"), _Run) or "strategies" not in data:
        raise UsageError(f"checkpoint {path} is not a dmabufsim checkpoint (or is corrupt); start a new checkpoint")
    if data.get("version") != CHECKPOINT_VERSION:
        raise UsageError(f"checkpoint {path} has format version {data.get('version')}, this dmabufsim reads "
                         f"{CHECKPOINT_VERSION} (older ones record no scenario); start a new checkpoint")
    why = _refusal(path, data.get("identity") or {}, identity)
    if why is not None:
        raise UsageError(why)
    return data


def load_checkpoint(path: str, phases: list[tuple[ExploreStrategy, int]], identity: dict[str, Any]) -> _Run:
    """Restore a run saved by :func:`save_checkpoint` into freshly made strategies of the same plan.

    ``identity`` (:func:`checkpoint_identity` of the fresh plan) must match the saved one (R9).
    """
    data = read_checkpoint(path, identity)
    saved = data["strategies"]
    if [n for n, _, _ in saved] != [type(s).__name__ for s, _ in phases]:
        raise UsageError(f"checkpoint {path} was made with strategies {[n for n, _, _ in saved]}")
    for (s, _), (_, st, _) in zip(phases, saved, strict=True):
        s.restore(st)
    run: _Run = data["run"]
    return run


def job_checkpoint(path: str, job: int, jobs: int) -> str:
    """The checkpoint file of job ``job`` of ``jobs`` (``jobs == 1``: ``path`` itself)."""
    return path if jobs == 1 else f"{path}.job{job}-of-{jobs}"


def check_checkpoint_jobs(path: str, jobs: int, resume: bool) -> None:
    """Refuse to resume a checkpoint made with another ``--jobs`` (each job saved its own subtree)."""
    if not resume:
        return
    folder, base = os.path.split(os.path.abspath(path))
    made: set[int] = set()
    if os.path.exists(path):
        made.add(1)
    prefix = base + ".job"
    for name in os.listdir(folder or "."):
        if name.startswith(prefix) and "-of-" in name and not name.endswith(".tmp"):
            n = name.rsplit("-of-", 1)[1]
            if n.isdigit():
                made.add(int(n))
    other = sorted(made - {jobs})
    if other:
        raise UsageError(
            f"checkpoint {path} was made with --jobs {other[0]}; resume it with the same --jobs "
            f"(each job saved its own share of the search)"
        )


def _scenario_name(scenario: Callable[..., Any]) -> str:
    mod = getattr(scenario, "__module__", "") or ""
    return f"{mod}:{getattr(scenario, '__qualname__', repr(scenario))}"


def explore(
    scenario: Callable[..., Any],
    strategy: str | ExploreStrategy | None = None,
    *,
    budget: int = 1000,
    time_budget: float | None = None,
    max_steps: int | None = None,
    seed: int = 0,
    depth: int = 3,
    preemption_bound: int | None = None,
    jobs: int = 1,
    stop_on_first: bool = True,
    expected: Iterable[str] = (),
    shrink_findings: bool = True,
    check_replay: bool = True,
    coverage: bool = True,
    kernel_options: dict[str, Any] | None = None,
    progress: Progress | None = None,
    checkpoint: str | None = None,
    resume: bool = False,
    lockdep_graph: bool = True,
    confirm_cycles: bool = True,
    confirm_budget: int = 50,
    should_stop: Callable[[], bool] | None = None,
    reduction: bool = True,
) -> Report:
    """Explore the schedules of ``scenario`` and report (the catalog's entry point).

    ``strategy``: ``"random"``, ``"pct"`` (``depth``), ``"dfs"``, ``"icb"``,
    ``"dpor"`` (both with ``preemption_bound``), an :class:`ExploreStrategy`,
    or None for the portfolio. ``budget`` executions, ``time_budget``
    seconds, ``max_steps`` per execution (R4). ``jobs`` processes
    (``parallel.py``). ``stop_on_first``: end at the first unexpected bug
    (or once every expected finding was seen), else collect all. ``expected``: finding kinds or signatures the scenario
    expects (R3). ``kernel_options``: passed to every ``Kernel`` (e.g.
    ``{"lockdep": False}``). ``checkpoint``/``resume``: save / continue a
    long systematic run (with ``jobs > 1`` each job keeps its own file,
    ``CHECKPOINT.jobJ-of-N``, and resumes with the same ``jobs``). ``lockdep_graph``: one lockdep graph
    per job across its executions (R7). ``confirm_cycles``: try to turn
    each lockdep cycle into a concrete deadlock (``guided.py``, R8).
    ``should_stop``: polled before every execution (one job only); True
    interrupts the run as a Ctrl-C would (R11). ``reduction``: the systematic strategies
    run with Lipton reduction (``kernel/reduction.py``); False turns it off
    (``explore --no-reduction``). Returns a :class:`Report`.
    """
    if budget < 1:
        raise UsageError(f"budget must be at least 1 execution, got {budget}")
    exp = tuple(expected)
    opts = dict(kernel_options or {})
    if not reduction:
        opts["reduction"] = False
    if max_steps is not None:
        opts["max_steps"] = max_steps
    name = strategy.describe() if isinstance(strategy, ExploreStrategy) else (strategy or "portfolio")
    start = time.monotonic()
    if resume and not checkpoint:
        raise UsageError("resume needs the checkpoint file to resume (--checkpoint FILE)")
    identity: dict[str, Any] = {}
    deadline = None if time_budget is None else start + time_budget  # R4: a hard limit
    if checkpoint:
        folder = os.path.dirname(os.path.abspath(checkpoint))
        if not os.path.isdir(folder):
            raise UsageError(f"cannot write checkpoint {checkpoint}: no such directory {folder}")
        check_checkpoint_jobs(checkpoint, jobs, resume)
        fresh = plan(strategy, budget, seed=seed, depth=depth, preemption_bound=preemption_bound)
        identity = checkpoint_identity(scenario, fresh, opts, lockdep_graph)
        if resume and jobs > 1:  # R9: refuse a foreign checkpoint here, before any job starts
            files = [job_checkpoint(checkpoint, j, jobs) for j in range(jobs)]
            if not any(os.path.exists(f) for f in files):
                raise UsageError(f"nothing to resume: checkpoint {checkpoint} does not exist")
            for f in files:
                if os.path.exists(f):
                    read_checkpoint(f, identity)
    if jobs > 1:
        if isinstance(strategy, ExploreStrategy):
            raise UsageError("jobs > 1 needs a strategy by name (each process builds its own)")
        from .parallel import run_parallel

        run, phase_descr = run_parallel(
            scenario, strategy, budget=budget, jobs=jobs, seed=seed, depth=depth,
            preemption_bound=preemption_bound, time_budget=time_budget, stop_on_first=stop_on_first,
            expected=exp, kernel_options=opts, coverage=coverage, progress=progress, lockdep_graph=lockdep_graph,
            checkpoint=checkpoint, resume=resume, identity=identity, deadline=deadline,
        )
        phases = phase_descr
    else:
        phases = plan(strategy, budget, seed=seed, depth=depth, preemption_bound=preemption_bound)
        state = None
        if checkpoint and resume:
            state = load_checkpoint(checkpoint, phases, identity)
        run = run_job(
            scenario, phases, time_budget=time_budget, stop_on_first=stop_on_first, expected=exp,
            kernel_options=opts, coverage=coverage, progress=progress, checkpoint=checkpoint, state=state,
            lockdep_graph=lockdep_graph, identity=identity, deadline=deadline, should_stop=should_stop,
        )
    report = finish(run, phases, _scenario_name(scenario), name, exp, jobs, time.monotonic() - start)
    if run.reason == "interrupted":
        return report  # R11: report at once
    try:
        post_process(report, scenario, opts, shrink_findings=shrink_findings, check_replay=check_replay,
                     deadline=deadline)
        if confirm_cycles:
            confirm_findings(report, scenario, opts, budget=confirm_budget, seed=seed, deadline=deadline)
    except KeyboardInterrupt:  # R11: what was checked so far stands; the rest is left as found
        report.reason = "interrupted"
    return report


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
