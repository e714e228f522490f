"""One job of an exploration: its phases' loop, its run state, and its checkpoints.

The explorer (``explorer.py``) decides what to run and reports; the parallel
engine (``cluster.py``) runs several jobs on Dask workers; both call
:func:`run_job` here, which imports neither (dependencies point down).

Rules (the explorer's rules it carries out are named where they apply):

* J1 (one job's loop): each phase runs its strategy execution after
  execution until its share of the budget, its space, the deadline, a
  finding with stop-on-first, or an interruption ends it (explorer R1, R4,
  R11); randomised strategies run the executions ``i`` with
  ``i mod jobs == job`` (parallel R1). The phase's executions run on one
  Kernel, reset between them (runtime R13; coverage attaches to it again
  each time): the same traces, findings, tokens and coverage.
* J2 (dedup at the lowest index): a finding is kept once per signature, with
  the lowest execution index of the strategy that found it (explorer R2).
* J3 (checkpoints): a checkpoint is the job's run and its strategies' state,
  written whole (temp file, then rename), with what it belongs to; resuming
  refuses any other scenario, strategy, options or package (explorer R9).
* J4 (options): a job's settings are one :class:`JobOptions`; keyword calls
  of :func:`run_job` build it (a keyword it does not know is a ``TypeError``).
"""

from __future__ import annotations

import os
import pickle
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any

from ..kernel.errors import UsageError
from ..kernel.execution import CONFIG_FIELDS, Config, Execution, config_of
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
from .report import ExploredFinding, PhaseResult

__all__ = [
    "CHECKPOINT_VERSION", "STRATEGIES", "JobOptions", "Progress", "checkpoint_identity", "load_checkpoint",
    "make_strategy", "plan", "read_checkpoint", "run_job", "save_checkpoint", "terminal_state",
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


@dataclass
class JobOptions:
    """The settings of one job (J4): what :func:`run_job` used to take as 18 keywords.

    ``job`` of ``jobs``: this job's share (parallel R1). ``should_stop``:
    polled before every execution; True ends the job as ``interrupted`` (how
    the parallel engine's jobs hear of a Ctrl-C: they ignore SIGINT, so the
    interruption never lands inside a kthread). ``identity``: what the
    checkpoint belongs to (explorer R9, :func:`checkpoint_identity`).
    ``state``: a run to continue (a checkpoint's, or the previous round's).
    """

    job: int = 0
    jobs: int = 1
    time_budget: float | None = None
    stop_on_first: bool = True
    expected: Sequence[str] = ()
    kernel_options: dict[str, Any] | None = None
    coverage: bool = True
    collect_states: bool = False
    progress: Progress | None = None
    checkpoint: str | None = None
    checkpoint_every: int = 200
    state: _Run | None = None
    deadline: float | None = None
    lockdep_graph: bool = False
    should_stop: Callable[[], bool] | None = None
    identity: dict[str, Any] | None = None


#: The names :func:`run_job` accepts as keywords (J4).
JOB_OPTION_NAMES = frozenset(f.name for f in fields(JobOptions))


def run_job(
    scenario: Callable[..., Any],
    phases: list[tuple[ExploreStrategy, int]],
    options: JobOptions | None = None,
    **kw: Any,
) -> _Run:
    """Run this job's share of the phases (the explorer's loop, J1; see :func:`explore`).

    ``options``: a :class:`JobOptions`; keywords override its fields
    (``run_job(s, phases, stop_on_first=False)``), J4.
    """
    unknown = sorted(set(kw) - JOB_OPTION_NAMES)
    if unknown:
        raise TypeError(f"run_job() got unexpected keyword argument(s) {', '.join(unknown)}")
    o = replace(options or JobOptions(), **kw)
    job, jobs, kernel_options, deadline = o.job, o.jobs, o.kernel_options, o.deadline
    stop_on_first, expected, collect_states, progress = o.stop_on_first, o.expected, o.collect_states, o.progress
    checkpoint, checkpoint_every, should_stop, identity = o.checkpoint, o.checkpoint_every, o.should_stop, o.identity
    state, time_budget, coverage = o.state, o.time_budget, o.coverage
    opts = with_lockdep_graph(kernel_options or {}) if o.lockdep_graph else dict(kernel_options or {})
    run = state if state is not None else _Run()
    start = time.monotonic()
    if deadline is None and time_budget is not None:
        deadline = start + time_budget
    cov = run.coverage if coverage else None
    known = _Held(run.findings, run.info)  # the signatures this job holds (live)
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
            # every execution of the phase shares one (immutable) Config, built once
            cfg: Config | None = config_of(None, popts) if CONFIG_FIELDS.issuperset(popts) else None
            # randomised strategies: execution i belongs to job i % jobs
            indices_step = 1 if strat.systematic else jobs
            i = run.phase_done * indices_step + (0 if strat.systematic else job)
            #: one Kernel for the phase's executions, reset between them (runtime R13)
            reused: Kernel | None = None
            # the Recorder only counts preemptions for coverage: skip the wrapper without it (one
            # per phase: its defaults start again with every execution)
            run_with = Recorder(strat, cov) if cov is not None else strat
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
                if reused is not None:
                    k = reused
                    k.reset()
                else:
                    k = (Kernel(strategy=run_with, deadline=deadline, config=cfg) if cfg is not None
                         else Kernel(strategy=run_with, deadline=deadline, **popts))
                k.known_findings = known  # R2: a finding already held needs no text (Kernel.wants_text)
                strat.attach(k)
                if cov is not None:
                    cov.attach(k)
                ex = k.run(scenario)
                if ex.findings and _interrupted(ex):
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
                reused = k
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


class _Held:
    """The signatures of the findings a job holds, errors and infos (``Kernel.known_findings``):
    a live view of both tables, asked once per finding of every execution."""

    __slots__ = ("errors", "infos")

    def __init__(self, errors: dict[str, Any], infos: dict[str, Any]) -> None:
        self.errors = errors
        self.infos = infos

    def __contains__(self, signature: object) -> bool:
        return signature in self.errors or signature in self.infos


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


