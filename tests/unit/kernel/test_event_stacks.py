"""Trace T4 (each recorded event's call site, interned) and the scheduler's marks of a recorded execution."""

from __future__ import annotations

from typing import Any

import dmabufsim as ds
from dmabufsim.kernel.runtime import TIMER_OBJ
from dmabufsim.kernel.trace import SchedMark


def _w(a: Any, b: Any) -> None:
    with a, b:
        pass


def abba(k: ds.Kernel) -> None:
    a, b = ds.Mutex("A"), ds.Mutex("B")
    k.spawn(_w, a, b, name="t1")
    k.spawn(_w, b, a, name="t2")


def _sleeper(k: ds.Kernel) -> None:
    k.nsleep(1000)


def _irq_handler(k: ds.Kernel) -> None:
    k.point("irq_work", 77, True)


def timers_and_irq(k: ds.Kernel) -> None:
    k.spawn(_sleeper, k, name="sleeper")
    k.add_timer(500, lambda: None, name="tick")
    k.raise_irq(_irq_handler, k, name="gpu_irq")


def _frames(ex: ds.Execution, i: int) -> list[str]:
    assert ex.event_stacks is not None and ex.stack_table is not None
    return [f.function for f in ex.stack_table[ex.event_stacks[i]]]


def test_every_recorded_event_has_its_call_site() -> None:
    ex = ds.Kernel(seed=1, record_trace=True).run(abba)
    assert ex.events is not None and ex.event_stacks is not None and ex.stack_table is not None
    assert len(ex.event_stacks) == len(ex.events)
    assert ex.stack_table[0] == ()
    locks = [i for i, e in enumerate(ex.events) if e.op == "mutex_lock"]
    assert len(locks) == 4
    assert all(_frames(ex, i) == ["_w"] for i in locks)
    spawns = [i for i, e in enumerate(ex.events) if e.op == "spawn"]
    assert [_frames(ex, i) for i in spawns] == [["abba"], ["abba"]]
    # Each distinct stack is kept once.
    assert len(set(ex.stack_table)) == len(ex.stack_table)


def test_stacks_are_deterministic_and_cost_nothing_unrecorded() -> None:
    a = ds.Kernel(seed=5, record_trace=True).run(abba)
    b = ds.Kernel(seed=5, record_trace=True).run(abba)
    assert a.event_stacks == b.event_stacks
    assert [[str(f) for f in s] for s in a.stack_table or []] == [[str(f) for f in s] for s in b.stack_table or []]
    plain = ds.Kernel(seed=5).run(abba)
    assert plain.event_stacks is None and plain.stack_table is None and plain.sched_marks is None
    assert plain.trace_digest == a.trace_digest


def test_a_timer_event_has_no_thread_stack_and_irq_handlers_are_marked() -> None:
    ex = ds.Kernel(strategy=ds.FirstStrategy(), record_trace=True).run(timers_and_irq)
    assert ex.events is not None
    timers = [i for i, e in enumerate(ex.events) if e.op == "timer"]
    assert timers and all(_frames(ex, i) == [] for i in timers)
    assert {t.name: t.context for t in ex.threads} == {"scenario": "", "sleeper": "", "gpu_irq": "hardirq"}


def test_sched_marks_tell_preemptions_from_blocks() -> None:
    ex = ds.Kernel(strategy=ds.FirstStrategy(), record_trace=True).run(timers_and_irq)
    assert ex.sched_marks is not None
    blocks = [m for m in ex.sched_marks if m.what == "block"]
    assert [(m.tid, m.on) for m in blocks] == [(1, f"msleep #{TIMER_OBJ - 1}")]  # its own timer (runtime R14)
    # A random schedule preempts runnable threads; every mark is one of the two kinds.
    found = set()
    for seed in range(20):
        r = ds.Kernel(seed=seed, record_trace=True).run(abba)
        assert r.sched_marks is not None and r.events is not None
        for m in r.sched_marks:
            assert isinstance(m, SchedMark) and m.what in ("preempt", "block") and 0 <= m.pos <= len(r.events)
            found.add(m.what)
    assert found == {"preempt", "block"}
