"""The settings of one exploration, as one object (:class:`ExploreOptions`).

``ds.explore(scenario, strategy, budget=..., jobs=...)`` keeps its keywords;
they build an :class:`ExploreOptions`, which is also what the explorer hands
to its parallel engine (``cluster.py``), so neither passes twenty keywords on.

Rules:

* O1 (keywords build options): ``explore(s, options=o, **kw)`` is
  ``explore(s, options=dataclasses.replace(o, **kw))``; a keyword that is not
  a field is a ``TypeError`` naming it, as a misspelt keyword always was.
* O2 (defaults): every field's default is the one the keyword had; the
  options hold no state of a run (a run never writes into them).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields, replace
from typing import Any

__all__ = ["ExploreOptions", "options_from"]

#: ``progress(executions, findings, elapsed seconds, strategy name)``.
Progress = Callable[[int, int, float, str], None]


@dataclass(frozen=True)
class ExploreOptions:
    """What :func:`dmabufsim.explore` does beside the scenario and the strategy (see its docstring).

    ``jobs``: Dask workers of a local cluster (1: this process only);
    ``cluster``: the address of a running Dask scheduler
    (``tcp://HOST:8786``), which then runs the jobs (``docs/cluster.md``).
    ``reduction``: the systematic strategies run with Lipton reduction
    (``kernel/reduction.py``); False turns it off (``explore --no-reduction``).
    ``race_stats``: count optimal DPOR's races by step pair and object
    (``race_stats.py``; ``strategy="odpor"``, one job), in ``Report.races``.
    """

    budget: int = 1000
    time_budget: float | None = None
    max_steps: int | None = None
    seed: int = 0
    depth: int = 3
    preemption_bound: int | None = None
    jobs: int = 1
    cluster: str | None = None
    stop_on_first: bool = True
    expected: Iterable[str] = ()
    shrink_findings: bool = True
    check_replay: bool = True
    coverage: bool = True
    kernel_options: dict[str, Any] | None = None
    progress: Progress | None = None
    checkpoint: str | None = None
    resume: bool = False
    lockdep_graph: bool = True
    confirm_cycles: bool = True
    confirm_budget: int = 50
    should_stop: Callable[[], bool] | None = None
    reduction: bool = True
    race_stats: bool = False


#: The keywords ``explore()`` accepts (O1).
OPTION_NAMES = frozenset(f.name for f in fields(ExploreOptions))


def options_from(options: ExploreOptions | None, kw: dict[str, Any]) -> ExploreOptions:
    """O1: ``options`` (or the defaults) with the keywords ``kw`` put in; an unknown keyword is a TypeError."""
    unknown = sorted(set(kw) - OPTION_NAMES)
    if unknown:
        raise TypeError(f"explore() got unexpected keyword argument(s) {', '.join(unknown)}")
    return replace(options or ExploreOptions(), **kw)
