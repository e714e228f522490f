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
* R3 (Ctrl-C): the jobs ignore SIGINT; the parent, interrupted, sets a
  stop event that every job polls before each execution, so each job ends
  cleanly and returns what it has; the parent keeps collecting for a few
  seconds, terminates a job that did not answer, and reports
  ``interrupted``. (A SIGINT delivered to a job itself could land inside
  a kthread or a queue operation and be lost or leave a lock held.)
* R4 (progress): each job sends its count every quarter second; the parent
  shows the sum (distinct findings: the largest job count until the merge).
* R5 (checkpoints): each job saves its own run and strategy state to
  ``CHECKPOINT.jobJ-of-N`` and, resuming, continues from it; the merge is
  then the merge of the jobs' whole histories. A checkpoint is resumed with
  the ``--jobs`` it was made with (the subtrees are the jobs').

Processes are forked (the scenario function need not be importable by
name); greenlets are never alive in the parent at fork time.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue
import signal
import time
from collections.abc import Callable, Sequence
from typing import Any

from .base import ExploreStrategy
from .coverage import Coverage
from .explorer import PhaseResult, Progress, _Run, job_checkpoint, load_checkpoint, plan, run_job

#: Seconds the parent keeps collecting results after a Ctrl-C.
INTERRUPT_GRACE = 5.0
#: Seconds between two progress messages of a job.
PROGRESS_EVERY = 0.25


def _child(
    q: Any,
    stop: Any,
    scenario: Callable[..., Any],
    strategy: str | None,
    job: int,
    jobs: int,
    kw: dict[str, Any],
    pkw: dict[str, Any],
) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # R3: the parent tells us through ``stop``
    phases = plan(strategy, **pkw)
    ck = kw.pop("checkpoint", None)
    resume = kw.pop("resume", False)
    if ck:  # R5: this job's own file
        ck = job_checkpoint(ck, job, jobs)
        if resume and os.path.exists(ck):
            kw["state"] = load_checkpoint(ck, phases)
        kw["checkpoint"] = ck
    last = [0.0]

    def report_progress(n: int, found: int, elapsed: float, name: str) -> None:
        if elapsed - last[0] >= PROGRESS_EVERY:
            last[0] = elapsed
            q.put((job, ("progress", n, found, name), ""))

    try:
        run = run_job(scenario, phases, job=job, jobs=jobs, progress=report_progress, should_stop=stop.is_set, **kw)
    except BaseException as exc:  # noqa: BLE001 - report the job's crash to the parent
        q.put((job, None, f"{type(exc).__name__}: {exc}"))
        return
    q.put((job, run, ""))


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
) -> tuple[_Run, list[tuple[ExploreStrategy, int]]]:
    """Run ``jobs`` processes and merge their results (R1-R3)."""
    ctx = mp.get_context("fork")
    q = ctx.Queue()
    stop = ctx.Event()
    pkw = {"budget": budget, "seed": seed, "depth": depth, "preemption_bound": preemption_bound}
    kw = {
        "time_budget": time_budget, "stop_on_first": stop_on_first, "expected": expected,
        "kernel_options": kernel_options, "coverage": coverage, "lockdep_graph": lockdep_graph,
        "checkpoint": checkpoint, "resume": resume,
    }
    procs = [ctx.Process(target=_child, args=(q, stop, scenario, strategy, j, jobs, kw, pkw), daemon=True)
             for j in range(jobs)]
    for p in procs:
        p.start()
    results: dict[int, _Run] = {}
    live: dict[int, tuple[int, int]] = {}
    start = time.monotonic()
    errors: list[str] = []
    interrupted = False
    timeout: float | None = None
    while True:  # a Ctrl-C anywhere in the collecting loop (R3) stops the jobs, then collects on
        try:
            while len(results) + len(errors) < jobs:
                try:
                    job, run, err = q.get(timeout=timeout if timeout is not None else 0.5)
                except queue.Empty:
                    if interrupted:
                        break
                    if all(not p.is_alive() for p in procs) and q.empty():
                        break
                    continue
                if isinstance(run, tuple):  # ("progress", executions, findings, strategy) of one job
                    live[job] = (run[1], run[2])
                    if progress is not None:
                        n = sum(v[0] for v in live.values())
                        progress(n, max(v[1] for v in live.values()), time.monotonic() - start, run[3])
                    continue
                if err:
                    errors.append(f"job {job}: {err}")
                else:
                    results[job] = run
                    live[job] = (run.executions, len(run.findings))
                    if progress is not None:
                        m = merge(list(results.values()))
                        progress(sum(v[0] for v in live.values()), len(m.findings), time.monotonic() - start,
                                 strategy or "portfolio")
            break
        except KeyboardInterrupt:
            interrupted = True
            stop.set()
            timeout = INTERRUPT_GRACE
    for p in procs:
        p.join(timeout=1.0)
        if p.is_alive():  # R3: a job that did not answer the stop event in time
            p.terminate()
            p.join(timeout=1.0)
    if errors:
        raise RuntimeError("explorer job(s) failed: " + "; ".join(errors))
    merged = merge([results[j] for j in sorted(results)])
    if interrupted or len(results) < jobs:
        merged.reason = "interrupted"
    return merged, plan(strategy, budget, seed=seed, depth=depth, preemption_bound=preemption_bound)
