"""Sleepers on the virtual clock: each sleeper's timer is its own object (runtime R14, odpor R10).

Two sleeps of different threads commute; timers of equal expiry fire in an
order that depends on each thread's own program only. The audit property
checks optimal and classic DPOR against DFS on random programs of sleeps,
``schedule_timeout``, waits with a timeout and their wakers, ``timer_list``
timers armed and deleted by other threads, and shared reads and writes.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import dmabufsim as ds
from dmabufsim.explore import DFS, DPOR, OptimalDPOR, audit
from dmabufsim.explore.explorer import run_job
from dmabufsim.kernel.runtime import TIMER_OBJ, is_timer_obj

NO_LOCKDEP = {"lockdep": False}
VAR = 31_000
#: Executions each search may run (DFS needs about 11,000 for the largest chosen program).
BUDGET = 20_000
#: One unit of virtual time (1 ms).
UNIT = 1_000_000

op = st.one_of(
    st.tuples(st.just("sleep"), st.integers(0, 2)),
    st.tuples(st.just("timeout"), st.integers(0, 2)),
    st.tuples(st.just("wait"), st.integers(0, 2)),
    st.tuples(st.just("complete")),
    st.tuples(st.just("arm"), st.integers(1, 2)),
    st.tuples(st.just("del")),
    st.tuples(st.just("hrtimer"), st.integers(0, 2)),
    st.tuples(st.just("read"), st.integers(0, 1)),
    st.tuples(st.just("write"), st.integers(0, 1)),
)
programs = st.lists(st.lists(op, min_size=1, max_size=3), min_size=2, max_size=3)


def build(progs: list[list[tuple[Any, ...]]]) -> Any:
    """Threads running ``progs``; a ``timer_list`` timer whose callback (a softirq thread) reads
    variable 0, writes variable 1 and completes the completion the waits wait on. The state: memory, what each
    thread saw (its reads, what its timeouts and waits returned, when it ended) and the
    callback's runs, and the order in which raw timers (``Kernel.add_timer``) fired."""

    def scenario(k: ds.Kernel) -> None:
        mem = [0, 0]
        seen: list[tuple[Any, ...]] = []
        fired: list[tuple[int, int]] = []
        hr: list[tuple[int, int]] = []
        comp = ds.Completion("done")

        def callback(tm: ds.TimerList) -> None:
            k.point("read", VAR, False)
            seen0 = mem[0]
            k.point("write", VAR + 1, True)
            mem[1] = mem[1] * 2 + 1
            fired.append((k.now // UNIT, seen0))
            comp.complete()

        timer = ds.TimerList(callback, name="tl")

        def run(tid: int, prog: list[tuple[Any, ...]]) -> None:
            acc = 0
            for o in prog:
                if o[0] == "sleep":
                    k.nsleep(o[1] * UNIT)
                elif o[0] == "timeout":
                    acc = acc * 3 + (k.schedule_timeout(o[1] * UNIT) > 0)
                elif o[0] == "wait":
                    acc = acc * 3 + (comp.wait_for_completion_timeout(o[1] * UNIT) > 0)
                elif o[0] == "complete":
                    comp.complete()
                elif o[0] == "arm":
                    acc = acc * 3 + timer.mod_timer(k.now + o[1] * UNIT)
                elif o[0] == "del":
                    acc = acc * 3 + timer.del_timer()
                elif o[0] == "hrtimer":
                    # a raw timer whose callback records its firing: the order of timers of equal
                    # expiry is part of the state (runtime R14)
                    k.add_timer(k.now + o[1] * UNIT, hr.append, (tid, o[1]), name=f"hr{tid}")
                elif o[0] == "read":
                    k.point("read", VAR + o[1], False)
                    acc = acc * 3 + mem[o[1]]
                else:
                    k.point("write", VAR + o[1], True)
                    mem[o[1]] = tid * 10 + acc % 7 + 1
            seen.append((tid, acc, k.now // UNIT))

        for i, p in enumerate(progs):
            k.spawn(run, i, p, name=f"t{i}")
        k.ext["explore.state"] = lambda: (tuple(mem), tuple(sorted(seen)), tuple(fired), tuple(hr))

    return scenario


def _run(scenario: Any, strategy: Any, budget: int = 5000) -> Any:
    return run_job(scenario, [(strategy, budget)], stop_on_first=False, collect_states=True, coverage=False,
                   kernel_options=NO_LOCKDEP)


def _audit(progs: list[list[tuple[Any, ...]]]) -> None:
    """Optimal and classic DPOR reach exactly DFS's terminal states (outcomes, findings and the
    scenario's state); optimal DPOR runs no redundant execution and drops no sequence."""
    res = audit(build(progs), budget=BUDGET, kernel_options=NO_LOCKDEP, por="odpor")
    if not res.exhausted:
        return
    assert res.ok, res.summary()
    assert res.sleep_blocked == 0
    odpor = OptimalDPOR()
    _run(build(progs), odpor, BUDGET)
    assert odpor.deviations == 0
    classic = audit(build(progs), budget=BUDGET, kernel_options=NO_LOCKDEP, por="dpor")
    if classic.exhausted:
        assert classic.ok, classic.summary()


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(programs)
def test_sound_on_random_timer_programs(progs: list[list[tuple[Any, ...]]]) -> None:
    _audit(progs)


@pytest.mark.slow
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(programs)
def test_sound_on_random_timer_programs_long(progs: list[list[tuple[Any, ...]]]) -> None:
    _audit(progs)


@pytest.mark.parametrize("prog", [
    [[("sleep", 1), ("write", 0)], [("sleep", 1), ("read", 0)]],  # equal expiry, then a race
    [[("sleep", 1), ("write", 0)], [("sleep", 2), ("read", 0)]],
    [[("wait", 1)], [("sleep", 1), ("complete",)]],  # the timeout against the waker one epoch later
    [[("wait", 1)], [("complete",)], [("sleep", 1)]],
    [[("arm", 1), ("sleep", 1), ("read", 1)], [("del",), ("sleep", 1)]],
    [[("arm", 1), ("wait", 1)], [("arm", 2), ("sleep", 1), ("del",)]],
    [[("timeout", 1), ("write", 1)], [("arm", 1), ("read", 1)]],
    [[("hrtimer", 1), ("sleep", 1)], [("hrtimer", 1), ("sleep", 1)]],  # equal expiry: fire by arming thread
    # a timer due at once fires only when no thread can run: a new epoch (odpor R3); compared by
    # virtual time, a reversal moved the woken thread's step before the other thread's
    [[("wait", 0)], [("timeout", 0), ("sleep", 0), ("wait", 0)]],
])
def test_sound_on_chosen_timer_programs(prog: list[list[tuple[Any, ...]]]) -> None:
    res = audit(build(prog), budget=BUDGET, kernel_options=NO_LOCKDEP, por="odpor")
    assert res.ok, res.summary()
    _audit(prog)


def test_two_sleepers_commute() -> None:
    """Two threads that only sleep (equal and unequal lengths): one trace, for both searches;
    DFS runs every interleaving of their points (16 for two equal sleeps)."""
    for progs in ([[("sleep", 1)], [("sleep", 1)]], [[("sleep", 1)], [("sleep", 2)]],
                  [[("sleep", 1), ("sleep", 1)], [("sleep", 1)], [("timeout", 1)]]):
        odpor, dpor = OptimalDPOR(), DPOR()
        assert _run(build(progs), odpor).executions == 1 and odpor.complete
        assert _run(build(progs), dpor).executions == 1 and dpor.complete
    dfs = DFS()
    assert _run(build([[("sleep", 1)], [("sleep", 1)]]), dfs).executions == 16


def _order_bug(reader_first_is_bug: bool) -> Any:
    """Two sleepers of equal expiry; after their wake-ups one writes a flag and the other reads
    it: the planted bug needs one particular order of the two woken threads."""

    def scenario(k: ds.Kernel) -> None:
        flag = [0]

        def writer() -> None:
            k.msleep(1)
            k.point("write", VAR, True)
            flag[0] = 1

        def reader() -> None:
            k.msleep(1)
            k.point("read", VAR, False)
            if bool(flag[0]) != reader_first_is_bug:
                raise AssertionError("planted: the sleepers woke in the order that breaks")

        k.spawn(writer, name="writer")
        k.spawn(reader, name="reader")

    return scenario


@pytest.mark.parametrize("reader_first_is_bug", [True, False])
@pytest.mark.parametrize("strategy", [OptimalDPOR, DPOR])
def test_planted_bug_needing_one_order_of_equal_sleepers(strategy: Any, reader_first_is_bug: bool) -> None:
    s = strategy()
    res = _run(_order_bug(reader_first_is_bug), s)
    assert s.complete and res.executions == 2
    assert [f.split(":")[0] for f in res.findings] == ["exception"]


def test_equal_expiry_timers_fire_by_arming_thread() -> None:
    """R14: timers of equal expiry fire in the order of the thread that armed them, whatever
    order the threads armed them in (DFS tries both)."""

    def scenario(k: ds.Kernel) -> None:
        order: list[str] = []

        def arm(name: str) -> None:
            k.point("arm", VAR + 5, False)
            k.add_timer(UNIT, order.append, name, name=name)
            k.add_timer(UNIT, order.append, name + "'", name=name + "'")

        k.spawn(arm, "b", name="tb")
        k.spawn(arm, "a", name="ta")
        k.ext["explore.state"] = lambda: tuple(order)

    res = _run(scenario, DFS())
    assert res.executions == 45
    assert set(res.states) == {("completed", (), ("b", "b'", "a", "a'"))}


def test_sleep_declares_its_own_timer() -> None:
    """A sleep's point and its wait name the sleeper's own timer object (R14); with early timers
    on, the clock (object -1)."""
    seen: list[tuple[str, int]] = []

    def scenario(k: ds.Kernel) -> None:
        def body() -> None:
            seen.append(("tid", k.current.tid))
            k.msleep(1)
            seen.append(("obj", k.sleep_obj(k.current)))

        k.spawn(body, name="s")

    ds.Kernel().run(scenario)
    tid = seen[0][1]
    assert seen[1] == ("obj", TIMER_OBJ - tid) and is_timer_obj(seen[1][1]) and not is_timer_obj(-1)
    seen.clear()
    ds.Kernel(options={"early_timers": True}).run(scenario)
    assert seen[1] == ("obj", -1)
