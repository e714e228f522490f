"""``--jobs N``: one exploration split into jobs, merged deterministically.

Rules:

* R1 (split): randomised strategies give execution ``i`` to job
  ``i mod N`` (each execution has its own seed stream, so the executions
  are the same ones as with one job); ICB, DPOR and optimal DPOR split the
  tree at its first choice (DFS R4, DPOR R5, odpor R7). The union of the
  jobs is the one-job run. A first choice with fewer alternatives than jobs
  leaves the extra jobs idle. A plain DFS is not split into jobs but
  dynamically, into pieces (``split.py``, cluster C8).
* R2 (merge): findings are merged by signature keeping the one found at the
  lowest execution index, so the set of findings (and their tokens) does not
  depend on which process was faster; executions and coverage add up; a
  systematic phase is exhausted only when every job exhausted its share.
* R3 (Ctrl-C, SIGTERM): a job hears of an interruption only through the
  ``should_stop`` it polls before an execution (``cluster.py`` C4), so it
  ends cleanly and returns what it has; a signal delivered to a job itself
  could land inside a kthread and leave a lock held.
* R4 (progress): each job sends its count every quarter second; the client
  shows the sum (distinct findings: the largest job count until the merge).
* R5 (checkpoints): each job saves its own run and strategy state to
  ``CHECKPOINT.jobJ-of-N`` and, resuming, continues from it; the merge is
  then the merge of the jobs' whole histories. A checkpoint is resumed with
  as many jobs as it was made with, on a cluster of any size (``cluster.py``
  C1: jobs are shares of the search, not workers).
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
* R7 (orphans): a job dies with its parent. On Linux it asks for
  ``SIGKILL`` at its parent's death (``prctl(PR_SET_PDEATHSIG)``); everywhere,
  it checks before each execution that its parent is still the process that
  forked it, and exits at once if not (a checkpoint is only ever written
  whole, by rename, so a job killed between two saves leaves the last one).

The jobs run as tasks of a Dask cluster (``cluster.py``); this module holds
the rules of splitting and merging, which do not depend on the engine.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from collections.abc import Sequence
from typing import Any

from .base import ExploreStrategy
from .coverage import Coverage
from .job import _Run, _share, plan
from .report import PhaseResult

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
