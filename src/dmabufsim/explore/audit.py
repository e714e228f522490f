"""Audit mode: DPOR (or optimal DPOR) must reach every terminal state plain DFS reaches.

Partial-order reduction is only a reduction if it is sound: on a small model
both searches run to exhaustion and their sets of terminal states (outcome,
finding signatures, and the scenario's own final state published in
``k.ext["explore.state"]``) must be equal. A difference is a bug in the
explorer -- not in the scenario -- and is reported as such.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .dfs import DFS
from .dpor import DPOR
from .explorer import run_job
from .odpor import OptimalDPOR


@dataclass(frozen=True)
class AuditResult:
    """The two searches' state sets and executions; ``ok`` when both exhausted and equal."""

    dfs_states: frozenset[tuple[Any, ...]]
    dpor_states: frozenset[tuple[Any, ...]]
    dfs_executions: int
    dpor_executions: int
    exhausted: bool
    sleep_blocked: int

    @property
    def missing_in_dpor(self) -> frozenset[tuple[Any, ...]]:
        return self.dfs_states - self.dpor_states

    @property
    def extra_in_dpor(self) -> frozenset[tuple[Any, ...]]:
        return self.dpor_states - self.dfs_states

    @property
    def ok(self) -> bool:
        return self.exhausted and self.dfs_states == self.dpor_states

    def summary(self) -> str:
        if not self.exhausted:
            return (f"audit inconclusive: a search did not exhaust within the budget "
                    f"(dfs {self.dfs_executions}, dpor {self.dpor_executions} executions)")
        if self.ok:
            return (f"audit ok: {len(self.dfs_states)} terminal states; dfs {self.dfs_executions} executions, "
                    f"dpor {self.dpor_executions} ({self.sleep_blocked} sleep-set blocked)")
        return (f"EXPLORER BUG: DPOR and DFS disagree: missing in dpor {sorted(map(repr, self.missing_in_dpor))}, "
                f"extra in dpor {sorted(map(repr, self.extra_in_dpor))}")


def audit(
    scenario: Callable[..., Any],
    *,
    budget: int = 20_000,
    preemption_bound: int | None = None,
    kernel_options: dict[str, Any] | None = None,
    por: str = "dpor",
) -> AuditResult:
    """Run DFS and DPOR (same bound) to exhaustion and compare their terminal states.

    ``por="odpor"`` audits optimal DPOR instead (unbounded only); its
    ``sleep_blocked`` is then the number of redundant executions."""
    dfs = DFS(preemption_bound)
    dpor: DPOR | OptimalDPOR = OptimalDPOR(preemption_bound) if por == "odpor" else DPOR(preemption_bound)
    common: dict[str, Any] = {
        "stop_on_first": False, "collect_states": True, "coverage": False, "kernel_options": kernel_options,
    }
    a = run_job(scenario, [(dfs, budget)], **common)
    b = run_job(scenario, [(dpor, budget)], **common)
    return AuditResult(
        frozenset(a.states), frozenset(b.states), a.executions, b.executions,
        dfs.complete and dpor.complete, dpor.redundant if isinstance(dpor, OptimalDPOR) else dpor.sleep_blocked,
    )
