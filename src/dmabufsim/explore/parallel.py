"""``--jobs N``: one exploration split among processes, merged deterministically.

Rules:

* R1 (split): randomised strategies give execution ``i`` to job
  ``i mod N`` (each execution has its own seed stream, so the executions
  are the same ones as with one job); systematic strategies split the tree
  at its root (DFS R4, DPOR R5). The union of the jobs is the one-job run.
  A root with fewer alternatives than jobs leaves the extra jobs idle.
* R2 (merge): findings are merged by signature keeping the one found at the
  lowest execution index, so the set of findings (and their tokens) does not
  depend on which process was faster; executions and coverage add up; a
  systematic phase is exhausted only when every job exhausted its share.
* R3 (Ctrl-C, SIGTERM): the jobs ignore SIGINT and SIGTERM (a terminal
  or a service manager sends them to the whole process group); the
  parent, interrupted, sets a stop event that every job polls before each
  execution, so each job ends cleanly and returns what it has; the parent
  keeps collecting for a few seconds, kills a job that did not answer,
  and reports ``interrupted``. (A signal delivered to a job itself could
  land inside a kthread or a queue operation and be lost or leave a lock
  held.)
* R4 (progress): each job sends its count every quarter second; the parent
  shows the sum (distinct findings: the largest job count until the merge).
* R5 (checkpoints): each job saves its own run and strategy state to
  ``CHECKPOINT.jobJ-of-N`` and, resuming, continues from it; the merge is
  then the merge of the jobs' whole histories. A checkpoint is resumed with
  the ``--jobs`` it was made with (the subtrees are the jobs').
* R6 (one budget): the execution budget is the total of all jobs, as with
  one job. A randomised phase's executions are dealt out by index (R1); a
  systematic phase's budget is split evenly among the jobs, and what a job
  leaves unused because its part of the tree was exhausted early is dealt
  out again, evenly, to the jobs that stopped at their budget -- in rounds,
  each job continuing where it stopped, until the budget is spent or no job
  can use more. A job's search depends only on its own cumulative budget,
  so the result does not depend on which process was faster. No round is
  dealt once a job stopped for another reason (a finding with
  stop-on-first, the time budget, an interruption). Only the last phase is
  dealt again (the plans made by name have their systematic phase last).
  A job waiting to hear whether it gets another round exits when its
  parent is gone.
* R7 (orphans): a job dies with its parent. On Linux it asks for
  ``SIGKILL`` at its parent's death (``prctl(PR_SET_PDEATHSIG)``); everywhere,
  it checks before each execution that its parent is still the process that
  forked it, and exits at once if not (a checkpoint is only ever written
  whole, by rename, so a job killed between two saves leaves the last one).

Processes are forked (the scenario function need not be importable by
name); greenlets are never alive in the parent at fork time.
"""

from __future__ import annotations

import ctypes
import multiprocessing as mp
import os
import queue
import signal
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from ..kernel.errors import SimulatorError
from .base import ExploreStrategy
from .coverage import Coverage
from .explorer import PhaseResult, Progress, _Run, _share, job_checkpoint, load_checkpoint, plan, run_job

#: Seconds the parent keeps collecting results after a Ctrl-C.
INTERRUPT_GRACE = 5.0
#: Seconds between two progress messages of a job.
PROGRESS_EVERY = 0.25
#: ``PR_SET_PDEATHSIG`` of ``<linux/prctl.h>``.
PR_SET_PDEATHSIG = 1
#: Exit status of a job that found itself orphaned (R6).
EXIT_ORPHANED = 1


def die_with_parent(parent: int) -> None:
    """Make this process die when ``parent`` (the process that started it) does (R6).

    Linux: ``prctl(PR_SET_PDEATHSIG, SIGKILL)``, then a check that the parent
    did not die before the request (the signal would never come). Elsewhere
    only the liveness check of :func:`orphaned` applies.
    """
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):  # no libc prctl: the liveness check remains
            pass
    if orphaned(parent):
        os._exit(EXIT_ORPHANED)


def orphaned(parent: int) -> bool:
    """True when ``parent`` is no longer this process's parent (it died: we were re-parented)."""
    return os.getppid() != parent


def job_plan(
    strategy: str | None, job: int, jobs: int, **pkw: Any
) -> list[tuple[ExploreStrategy, int]]:
    """Job ``job``'s phases: a systematic phase's budget is its even share of the total (R6)."""
    return [(s, _share(n, job, jobs) if s.systematic else n) for s, n in plan(strategy, **pkw)]


def _command(cmd: Any, parent: int) -> tuple[Any, ...]:
    """The parent's next word to a job: ("more", n) or ("done",); ("done",) if the parent died."""
    while True:
        try:
            msg: tuple[Any, ...] = cmd.get(timeout=1.0)
            return msg
        except queue.Empty:
            if os.getppid() != parent:
                return ("done",)


def _child(
    q: Any,
    cmd: Any,
    parent: int,
    stop: Any,
    scenario: Callable[..., Any],
    strategy: str | None,
    job: int,
    jobs: int,
    kw: dict[str, Any],
    pkw: dict[str, Any],
) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # R3: the parent tells us through ``stop``
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    die_with_parent(parent)  # R7
    phases = job_plan(strategy, job, jobs, **pkw)
    budget = kw.pop("time_budget", None)
    if kw.get("deadline") is None:
        kw["deadline"] = None if budget is None else time.monotonic() + budget  # one deadline for every round
    ck = kw.pop("checkpoint", None)
    resume = kw.pop("resume", False)
    if ck:  # R5: this job's own file
        ck = job_checkpoint(ck, job, jobs)
        if resume and os.path.exists(ck):  # the parent checked it belongs to this run (explorer R9)
            kw["state"] = load_checkpoint(ck, phases, kw["identity"])
        kw["checkpoint"] = ck
    last = [0.0]

    def report_progress(n: int, found: int, elapsed: float, name: str) -> None:
        if elapsed - last[0] >= PROGRESS_EVERY:
            last[0] = elapsed
            q.put((job, ("progress", n, found, name), ""))

    def should_stop() -> bool:
        if orphaned(parent):  # R7: nobody will read our result; leave the last checkpoint as it is
            os._exit(EXIT_ORPHANED)
        return bool(stop.is_set())

    while True:
        try:
            run = run_job(scenario, phases, job=job, jobs=jobs, progress=report_progress, should_stop=should_stop,
                          **kw)
        except BaseException as exc:  # noqa: BLE001 - report the job's crash to the parent
            q.put((job, None, str(exc) if isinstance(exc, SimulatorError) else f"{type(exc).__name__}: {exc}"))
            return
        q.put((job, run, ""))
        msg = _command(cmd, parent)
        if msg[0] != "more":
            return
        strat, share = phases[-1]  # R6: more of the last phase's budget, continuing where the job stopped
        phases[-1] = (strat, share + int(msg[1]))
        kw["state"] = run


def deal(
    runs: dict[int, _Run], given: dict[int, int], total: int, last: int, stop_on_first: bool
) -> dict[int, int]:
    """The next round of R6: extra executions of the last phase for each job that stopped at its budget.

    ``given``: each job's budget of the last phase so far; ``total``: the
    last phase's whole budget. Empty when nothing is left to deal, no job
    can use more, or a job stopped for another reason.
    """
    takers: list[int] = []
    spent = 0
    for j in sorted(runs):
        r = runs[j]
        at_last = r.phase_index == last and len(r.phases) > last
        if not at_last or r.reason in ("interrupted", "time budget", "nondeterministic scenario") or (
            stop_on_first and r.reason == "first finding"
        ):
            return {}
        if r.phases[last].exhausted:
            spent += r.phase_done
        elif r.reason == "execution budget":
            takers.append(j)
            spent += given[j]
        else:
            return {}
    left = total - spent
    if left <= 0 or not takers:
        return {}
    extra = {j: _share(left, i, len(takers)) for i, j in enumerate(takers)}
    return {j: n for j, n in extra.items() if n > 0}


def merge(runs: Sequence[_Run]) -> _Run:
    """Merge the runs of the jobs (R2)."""
    out = _Run(coverage=Coverage())
    for r in runs:
        out.executions += r.executions
        out.coverage.merge(r.coverage)
        out.states |= r.states
        out.nondeterminism += [m for m in r.nondeterminism if m not in out.nondeterminism]
        for table, mine in ((r.findings, out.findings), (r.info, out.info)):
            for sig, f in table.items():
                old = mine.get(sig)
                if old is None:
                    mine[sig] = f
                else:
                    occ = old.occurrences + f.occurrences
                    if (f.strategy, f.execution) < (old.strategy, old.execution):
                        mine[sig] = f
                    mine[sig].occurrences = occ
    nphases = max((len(r.phases) for r in runs), default=0)
    for i in range(nphases):
        parts = [r.phases[i] for r in runs if len(r.phases) > i]
        p = PhaseResult(parts[0].strategy)
        p.executions = sum(x.executions for x in parts)
        p.elapsed = max(x.elapsed for x in parts)
        firsts = [x.first_finding_at for x in parts if x.first_finding_at is not None]
        p.first_finding_at = min(firsts) if firsts else None
        times = [x.first_finding_time for x in parts if x.first_finding_time is not None]
        p.first_finding_time = min(times) if times else None
        p.exhausted = len(parts) == len(runs) and all(x.exhausted for x in parts)
        p.bound = parts[0].bound
        p.sleep_blocked = sum(x.sleep_blocked for x in parts)
        whole = len(parts) == len(runs)
        p.proved = whole and all(x.proved for x in parts)
        # a bound is finished when every job finished it in its share (a proved share: any bound)
        reached = [1 << 30 if x.proved else x.bound_reached for x in parts]
        p.bound_reached = min(reached) if whole and not p.proved else -1
        p.dropped = sum(x.dropped for x in parts)
        p.one_per_trace = all(x.one_per_trace for x in parts)
        if not p.proved:  # the weakest share's bound (a deepening job may stop earlier than another)
            p.bound = min(parts, key=lambda x: 1 << 30 if x.proved else x.bound_reached).bound
        out.phases.append(p)
    reasons = [r.reason for r in runs]
    for why in ("interrupted", "first finding", "time budget", "execution budget", "space exhausted"):
        if why in reasons:
            out.reason = why
            break
    return out


def run_parallel(
    scenario: Callable[..., Any],
    strategy: str | None,
    *,
    budget: int,
    jobs: int,
    seed: int,
    depth: int,
    preemption_bound: int | None,
    time_budget: float | None,
    stop_on_first: bool,
    expected: tuple[str, ...],
    kernel_options: dict[str, Any],
    coverage: bool,
    progress: Progress | None,
    lockdep_graph: bool = True,
    checkpoint: str | None = None,
    resume: bool = False,
    identity: dict[str, Any] | None = None,
    deadline: float | None = None,
) -> tuple[_Run, list[tuple[ExploreStrategy, int]]]:
    """Run ``jobs`` processes and merge their results (R1-R3)."""
    ctx = mp.get_context("fork")
    q = ctx.Queue()
    stop = ctx.Event()
    pkw = {"budget": budget, "seed": seed, "depth": depth, "preemption_bound": preemption_bound}
    kw = {
        "time_budget": time_budget, "stop_on_first": stop_on_first, "expected": expected,
        "kernel_options": kernel_options, "coverage": coverage, "lockdep_graph": lockdep_graph,
        "checkpoint": checkpoint, "resume": resume, "identity": identity or {},
        "deadline": deadline,
    }
    cmds = [ctx.Queue() for _ in range(jobs)]
    me = os.getpid()
    procs = [ctx.Process(target=_child, args=(q, cmds[j], me, stop, scenario, strategy, j, jobs, kw, pkw),
                         daemon=True) for j in range(jobs)]
    base = plan(strategy, budget, seed=seed, depth=depth, preemption_bound=preemption_bound)
    last = len(base) - 1
    dealt_again = base[last][0].systematic  # R6: a randomised phase's split is exact already
    given = {j: _share(base[last][1], j, jobs) for j in range(jobs)}
    pending = set(range(jobs))
    for p in procs:
        p.start()
    results: dict[int, _Run] = {}
    live: dict[int, tuple[int, int]] = {}
    start = time.monotonic()
    errors: list[tuple[int, str]] = []
    interrupted = False
    timeout: float | None = None
    while True:  # a Ctrl-C anywhere in the collecting loop (R3) stops the jobs, then collects on
        try:
            while pending:
                try:
                    job, run, err = q.get(timeout=timeout if timeout is not None else 0.5)
                except queue.Empty:
                    if interrupted:
                        break
                    if all(not procs[j].is_alive() for j in pending) and q.empty():
                        break
                    continue
                if isinstance(run, tuple):  # ("progress", executions, findings, strategy) of one job
                    live[job] = (run[1], run[2])
                    if progress is not None:
                        n = sum(v[0] for v in live.values())
                        progress(n, max(v[1] for v in live.values()), time.monotonic() - start, run[3])
                    continue
                pending.discard(job)
                if err:
                    errors.append((job, err))
                else:
                    results[job] = run
                    live[job] = (run.executions, len(run.findings))
                    if progress is not None:
                        m = merge(list(results.values()))
                        progress(sum(v[0] for v in live.values()), len(m.findings), time.monotonic() - start,
                                 strategy or "portfolio")
            if interrupted or errors or pending or not dealt_again or len(results) < jobs:
                break
            extra = deal(results, given, base[last][1], last, stop_on_first)
            if not extra:
                break
            for j, n in sorted(extra.items()):  # R6: another round for the jobs that can use more
                given[j] += n
                cmds[j].put(("more", n))
                pending.add(j)
        except KeyboardInterrupt:
            interrupted = True
            stop.set()
            timeout = INTERRUPT_GRACE
    for c in cmds:
        c.put(("done",))
    try:
        for p in procs:
            p.join(timeout=1.0)
    except KeyboardInterrupt:  # a second signal: no more waiting
        interrupted = True
    finally:
        for p in procs:
            if p.is_alive():  # R3: a job that did not answer the stop event in time (it ignores SIGTERM)
                p.kill()
                p.join(timeout=1.0)
    if errors:  # an internal error (kernel R6) or a crash of a job: never a finding of the scenario
        raise SimulatorError("; ".join(dict.fromkeys(m for _, m in sorted(errors))))  # each distinct one, by job
    merged = merge([results[j] for j in sorted(results)])
    if interrupted or len(results) < jobs:
        merged.reason = "interrupted"
    return merged, base
