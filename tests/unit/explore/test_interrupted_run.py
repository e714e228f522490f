"""An interrupted exploration reports at once (explorer R11), and an interrupted check keeps its settled rows
(runner R4): in-process, with the interruption raised where a signal would land."""

from __future__ import annotations

import dataclasses
from typing import Any

import dmabufsim as ds
from dmabufsim.explore import explore
from dmabufsim.scenarios import basics_locking, check, discover

from .scenarios import NO_LOCKDEP, abba, clean


def _stop_after(n: int) -> Any:
    calls = [0]

    def should_stop() -> bool:
        calls[0] += 1
        return calls[0] > n

    return should_stop


def test_an_interrupted_run_is_neither_replayed_nor_shrunk() -> None:
    rep = explore(abba, "random", budget=1000, stop_on_first=False, kernel_options=NO_LOCKDEP,
                  should_stop=_stop_after(6))
    assert rep.reason == "interrupted" and rep.executions == 6 and rep.verdict == "finding"
    [ef] = rep.findings
    assert ef.kind == "deadlock" and not ef.shrunk and ef.token == ef.original_token
    assert rep.verdict_line().endswith(" (interrupted: partial, not replay-checked or shrunk)")
    assert rep.exit_code == 1  # the CLI turns an interrupted run into 130 / 143 (cli.main)


def test_an_interrupted_clean_run_is_inconclusive() -> None:
    rep = explore(clean, "dfs", budget=1000, kernel_options=NO_LOCKDEP, should_stop=_stop_after(2))
    assert (rep.verdict, rep.reason, rep.executions, rep.exit_code) == ("inconclusive", "interrupted", 2, 3)


def _interrupting(k: ds.Kernel) -> None:
    basics_locking.ordered_mutexes(k)
    raise KeyboardInterrupt  # as if the user pressed Ctrl-C inside this execution


def test_an_interrupted_check_keeps_the_rows_it_settled() -> None:
    rows = discover().select(["B1/abba-mutexes", "B1/ordered-mutexes", "B2"])
    rows[1] = dataclasses.replace(rows[1], scenario=_interrupting, strategy="seeds", budget=5)
    res = check(rows, jobs=1)
    assert res.interrupted and not res.ok
    statuses = [(r.row.key, r.status) for r in res.rows]
    assert statuses == [("B1/abba-mutexes", "match"), ("B1/ordered-mutexes", "interrupted"),
                        ("B2/mutex-under-spinlock", "interrupted"), ("B2/trylock-under-spinlock", "interrupted")]
    assert res.rows[1].why == "interrupted before an execution ended"
    assert res.rows[2].why == "interrupted before an execution ended"
    assert res.to_json()["interrupted"] is True
