"""The interleaving explorer: strategies, verdicts, shrinking, parallel runs.

``explore(scenario, strategy=..., budget=...) -> Report`` is the entry point
(see ``explorer.py`` and ``docs/explorer.md``). The room itself is callable
too: ``ds.explore(scenario, ...)`` is ``ds.explore.explore(scenario, ...)``,
so one ``import dmabufsim as ds`` reaches both the entry point and every
name of the room (``ds.explore.OptimalDPOR``, ``ds.explore.Report``). Strategies, one per file,
each citing its paper: ``random_walk.py``, ``pct.py``, ``dfs.py`` (DFS and
iterative context bounding), ``dpor.py``, ``odpor.py`` (optimal DPOR).
"""

import sys
import types
from typing import Any

from .audit import AuditResult, audit
from .base import ExploreStrategy, mix_seed
from .coverage import Coverage
from .dfs import DFS, ICB
from .dpor import DPOR, DeepeningDPOR
from .explorer import (
    EXIT_FINDING,
    EXIT_INCONCLUSIVE,
    EXIT_OK,
    STRATEGIES,
    VERDICTS,
    Assurance,
    ExploredFinding,
    Guarantee,
    PhaseResult,
    Report,
    explore,
    make_strategy,
    terminal_state,
)
from .odpor import OptimalDPOR
from .options import ExploreOptions
from .pct import PCT
from .race_stats import RaceRow, RaceStats
from .random_walk import RandomWalk
from .shrink import ShrinkResult, replay, shrink

__all__ = [
    "DFS", "DPOR", "EXIT_FINDING", "Assurance", "DeepeningDPOR", "Guarantee",
    "EXIT_INCONCLUSIVE", "EXIT_OK", "ICB", "PCT", "STRATEGIES", "VERDICTS",
    "AuditResult", "Coverage", "ExploreOptions", "ExploreStrategy", "ExploredFinding", "OptimalDPOR", "PhaseResult",
    "RaceRow", "RaceStats", "RandomWalk", "Report",
    "ShrinkResult", "audit", "explore", "make_strategy", "mix_seed", "replay", "shrink", "terminal_state",
]


class _ExploreRoom(types.ModuleType):
    """This package, callable as its entry point :func:`explore` (``ds.explore(scenario, ...)``)."""

    def __call__(self, scenario: Any, *args: Any, **kwargs: Any) -> Report:
        return explore(scenario, *args, **kwargs)


sys.modules[__name__].__class__ = _ExploreRoom
