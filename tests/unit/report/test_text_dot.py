"""Kernel-style text reports (text R1-R3) and the DOT lock graph (dot R1-R3)."""

from __future__ import annotations

import dmabufsim as ds
from dmabufsim.report import dot, text
from dmabufsim.scenarios import basics_locking


def _deadlock() -> ds.Execution:
    ex = ds.Kernel(seed=2, lockdep=False, record_trace=True).run(basics_locking.abba_mutexes)
    assert ex.kinds == ["deadlock"]
    return ex


def test_deadlock_report_layout() -> None:
    ex = _deadlock()
    out = text.render_finding(ex.findings[0], "B1/abba-mutexes")
    lines = out.splitlines()
    assert lines[1] == "=" * 54 and lines[2] == "INFO: task blocked forever: deadlock" and lines[3] == "-" * 54
    assert "  t1/1 blocked in mutex_lock on lock_B (#2), holding [lock_A]" in lines
    assert "  t2/2 blocked in mutex_lock on lock_A (#1), holding [lock_B]" in lines
    assert "deadlock (error) at step 6, t=0 ns; rule: kernel R4: no runnable thread and no pending timer" in lines
    i = lines.index("t1/1:")
    assert lines[i + 1] == " Call Trace:" and lines[i + 2].startswith("  _take_in_order+")
    assert lines[-1] == f"replay: dmabufsim replay {ex.token} B1/abba-mutexes"


def test_sleep_in_atomic_banner_carries_the_site() -> None:
    ex = ds.Kernel(seed=0).run(basics_locking.mutex_under_spinlock)
    (f,) = ex.findings
    lines = text.render_finding(f).splitlines()
    assert lines[2].startswith("BUG: sleeping function called from invalid context at _update_under_spinlock+")
    assert lines.count(lines[2]) == 1  # the title is not printed twice (R1)
    assert any(ln.startswith("atomic because of spinlock (list_lock) taken at: ") for ln in lines)


def test_title_only_report_prints_details() -> None:
    f = ds.Finding(kind="dma-freed-page", title="BUG: DMA write to freed page",
                   details={"page": 7, "generation": 2, "owner": "free"})
    lines = text.render_finding(f).splitlines()
    assert lines[4:7] == ["generation: 2", "owner: free", "page: 7"]
    assert not any(ln.startswith("replay:") for ln in lines)  # no token, no replay line


def test_finding_json_round_trip() -> None:
    f = _deadlock().findings[0]
    assert text.finding_from_json(f.to_json()) == f


def test_execution_summary() -> None:
    ex = _deadlock()
    out = text.render_execution(ex, "B1/abba-mutexes")
    assert "outcome: deadlock  steps: 6  virtual time: 0 ns  findings: 1" in out
    assert "threads: scenario/0 exited, t1/1 blocked on mutex_lock #2, t2/2 blocked on mutex_lock #1" in out


def test_abba_graph_has_the_cycle_highlighted() -> None:
    ex = _deadlock()
    g = dot.graph_from_events(ex.events or [], {t.tid: t.name for t in ex.threads})
    assert g.nodes == ["lock_A", "lock_B"]
    assert set(g.edges) == {("lock_A", "lock_B"), ("lock_B", "lock_A")}
    assert dot.find_cycle(g) == ["lock_A", "lock_B"]
    out = dot.to_dot(g)
    assert '"lock_A" -> "lock_B" [label="t1 x1", color=red, penwidth=2];' in out
    assert '"lock_B" -> "lock_A" [label="t2 x1", color=red, penwidth=2];' in out
    assert out.startswith('digraph "lock dependencies" {') and out.rstrip().endswith("}")


def test_ordered_graph_is_acyclic_and_trylock_adds_no_edge() -> None:
    ex = ds.Kernel(seed=1, record_trace=True).run(basics_locking.ordered_mutexes)
    g = dot.graph_from_events(ex.events or [])
    assert list(g.edges) == [("lock_A", "lock_B")] and g.edges[("lock_A", "lock_B")][0] == 2
    assert dot.find_cycle(g) == []
    assert "color=red" not in dot.to_dot(g)
    ex2 = ds.Kernel(strategy=ds.FirstStrategy(), record_trace=True).run(basics_locking.trylock_under_spinlock)
    g2 = dot.graph_from_events(ex2.events or [])
    assert ("list_lock", "obj_mutex") not in g2.edges  # the trylock cannot wait
    assert ("obj_mutex", "other_mutex") in g2.edges


def test_given_chain_is_highlighted_even_if_not_in_the_trace() -> None:
    g = dot.graph_from_edges([("reservation_ww_class_mutex", "fs_reclaim")])
    out = dot.to_dot(g, ["reservation_ww_class_mutex", "fs_reclaim"])
    assert '"fs_reclaim" -> "reservation_ww_class_mutex" [color=red, style=dashed, label="reported"];' in out


def test_a_whole_splat_gets_no_second_banner() -> None:
    title = "WARNING: possible circular locking dependency detected"
    body = f"\n{'=' * 54}\n{title}\n{'-' * 54}\nt1/1 is trying to acquire lock:\n"
    f = ds.Finding(kind="circular-locking", title=title, report=body, rule="lockdep R5")
    lines = text.render_finding(f).splitlines()
    assert lines.count(title) == 1 and lines.count("=" * 54) == 1
    assert lines[1:5] == ["=" * 54, title, "-" * 54, "t1/1 is trying to acquire lock:"]


def _self_deadlock(k: ds.Kernel) -> None:
    outer, other = ds.Mutex("outer"), ds.Mutex("other")

    def worker() -> None:
        outer.lock()
        other.lock()
        outer.lock()  # mutex R2: waits for itself forever

    k.spawn(worker, name="w")


def test_deadlock_report_shows_the_lock_the_thread_holds_itself() -> None:
    ex = ds.Kernel(seed=0, lockdep=False).run(_self_deadlock)
    (f,) = [f for f in ex.findings if f.kind == "deadlock"]
    lines = text.render_finding(f).splitlines()
    assert "  w/1 blocked in mutex_lock on outer (#1), holding " \
        "[outer (#1: the lock it waits on, already held by this thread), other]" in lines
    assert f.details["holding"] == {"w": ["outer (#1: the lock it waits on, already held by this thread)", "other"]}


def test_c5_shrinker_deadlock_lists_the_resv_cs_holds() -> None:
    from dmabufsim.scenarios.catalog import discover

    row = discover().resolve("C5/shrinker-blocking-lock")
    assert row.scenario is not None
    ex = ds.Kernel(replay="dbs1.eJxjYGRkYgBiIACTAACtABc", **dict(row.kernel_options)).run(row.scenario)
    (f,) = [f for f in ex.findings if f.kind == "deadlock"]
    lines = text.render_finding(f).splitlines()
    assert "  cs/1 blocked in ww_mutex_lock on bo.resv (#3), holding [reservation_ww_class_mutex " \
        "(#3: the lock it waits on, already held by this thread), fs_reclaim]" in lines
    assert "  other-process/2 blocked in ww_mutex_lock on bo.resv (#3), holding [fs_reclaim]" in lines
