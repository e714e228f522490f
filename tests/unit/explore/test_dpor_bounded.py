"""Regression: DPOR under a preemption bound must reach every terminal state bounded DFS reaches."""

from __future__ import annotations

from typing import Any

from dmabufsim.explore import audit

from .test_audit_property import build

#: found by test_bounded_dpor_matches_bounded_dfs: bounded DPOR missed a terminal state
PROGRAMS: list[list[tuple[Any, ...]]] = [
    [("read", 0), ("read", 0), ("write", 0)],
    [("read", 0), ("read", 0)],
    [("write", 0)],
]


def test_bounded_dpor_reaches_every_state_of_bounded_dfs() -> None:
    res = audit(build(PROGRAMS), budget=3000, preemption_bound=2, kernel_options={"lockdep": False})
    assert res.exhausted, res.summary()
    assert res.ok, res.summary()
    assert res.dpor_executions <= res.dfs_executions, res.summary()


def test_bounded_dpor_sound_for_every_bound() -> None:
    for bound in range(4):
        res = audit(build(PROGRAMS), budget=3000, preemption_bound=bound, kernel_options={"lockdep": False})
        assert res.ok, (bound, res.summary())


def test_bounded_dpor_sound_when_a_sleeping_thread_was_explored_without_cut() -> None:
    # sleeping only threads whose earlier subtree saw no bound cut still missed a state here
    programs: list[list[tuple[Any, ...]]] = [
        [("write", 1)],
        [("read", 1), ("write", 0)],
        [("write", 1), ("read", 1), ("read", 0)],
    ]
    for bound in range(4):
        res = audit(build(programs), budget=3000, preemption_bound=bound, kernel_options={"lockdep": False})
        assert res.ok, (bound, res.summary())
        assert res.dpor_executions <= res.dfs_executions, (bound, res.summary())
