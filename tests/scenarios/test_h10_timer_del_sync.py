"""H10: a fence signalled from a timer runs a callback that del_timer_syncs."""

from __future__ import annotations

import dmabufsim as ds
from dmabufsim.scenarios import check, discover
from dmabufsim.scenarios import h10_timer_del_sync as h10


def test_h10_rows_match_and_the_fix_is_proved() -> None:
    res = check(discover().select(["H10"]), jobs=1)
    got = {r.row.key: (r.status, sorted(r.found.kinds) if r.found else None) for r in res.rows}
    assert got == {
        "H10/del-timer-sync-in-callback": ("match", ["circular-locking", "recursive-locking"]),
        "H10/worker": ("match", []),
    }
    worker = next(r for r in res.rows if r.row.design == "worker")
    assert worker.assurance is not None and worker.assurance.proved
    assert worker.executions == 155


def test_del_timer_sync_inside_the_timer_softirq_is_recursive_on_the_timer_class() -> None:
    rep = ds.explore(h10.del_timer_sync_in_callback, strategy="odpor", budget=400)
    rec = rep.by_kind("recursive-locking")[0].finding
    assert rec.title == "WARNING: possible recursive locking detected"
    assert rec.details["chain"] == ["(&cb->timer)", "(&cb->timer)"]
    assert rec.threads[0].name == "timer:&cb->timer"
    cyc = rep.by_kind("circular-locking")[0].finding
    assert sorted(cyc.details["chain"]) == ["(&cb->timer)", "i915.rcs0.fence_lock"]
    # The cycle closes over the lock graph the explorer keeps across executions (as lockdep does
    # across a boot); the recursion is in one execution, and its token replays it.
    again = ds.Kernel(replay=rec.token).run(h10.del_timer_sync_in_callback)
    assert again.kinds[0] == "recursive-locking"
