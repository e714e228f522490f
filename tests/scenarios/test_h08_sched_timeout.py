"""H8: the scheduler's timeout handler vs the cleanup of the job it blames (2019): peeking at the
first pending job is a use-after-free of the job; taking it off the list is proved clean."""

from __future__ import annotations

import dmabufsim as ds
from dmabufsim.scenarios import check, discover
from dmabufsim.scenarios import h08_sched_timeout as h8


def test_h8_rows_match_and_the_fix_is_proved() -> None:
    res = check(discover().select(["H8"]), jobs=1)
    by = {r.row.key: r for r in res.rows}
    assert {k: (r.status, sorted(r.found.kinds) if r.found else None) for k, r in by.items()} == {
        "H8/peek": ("match", ["use-after-free"]),
        "H8/take-off-list": ("match", []),
    }
    fixed = by["H8/take-off-list"]
    assert fixed.exhaustive and fixed.found_text == "clean (78 executions, odpor; odpor exhausted (unbounded))"
    assert fixed.assurance is not None and fixed.assurance.proved
    assert fixed.row.year == 2019 and "andrey.grodzovsky@amd.com" in fixed.row.source

    bug = by["H8/peek"]
    assert bug.first is not None and bug.first["title"] == "BUG: KASAN: slab-use-after-free in amdgpu_job_timedout"
    again = ds.Kernel(replay=bug.token).run(h8.peek)
    assert again.kinds == ["use-after-free"]
    f = again.findings[0]
    assert f.details["object"] == "drm_sched_job J" and f.details["freed_in"] == "kfree(job)"
    # The timeout handler's kworker touched it; the scheduler thread freed it in free_job.
    assert [t.name for t in f.threads] == ["kworker/events:0", "gfx"]
    assert [fr.function for fr in f.threads[0].stack] == ["read", "timedout_job", "_job_timedout"]
    assert [fr.function for fr in f.threads[1].stack] == ["cleanup", "free_job", "_main"]
    assert again.trace_digest == ds.Kernel(replay=bug.token).run(h8.peek).trace_digest
