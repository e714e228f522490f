"""counter C1-C7: updates of a count that commute are declared as reads, and nothing whose
outcome depends on their order is lost.

The audits compare optimal and classic DPOR with DFS (every interleaving) on random programs of
gets, puts, value checks and frees across two or three threads: the terminal states (every value
a check saw, the count and whether the object was freed, which thread freed it) and the findings
(use-after-free on a get or put of a freed object, an underflow, the leak of an object never
freed) must be the same sets.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import dmabufsim as ds
from dmabufsim.explore import OptimalDPOR, audit
from dmabufsim.explore.explorer import run_job
from dmabufsim.kernel.counter import CounterRule, counter_add, counter_observe
from dmabufsim.kernel.trace import refcount_oid
from dmabufsim.mm.page import GFP_KERNEL, page_allocator, page_count_observe

NO_LOCKDEP = {"lockdep": False}
VAR = 10_000


class Obj:
    """A reference-counted object of the test: its count and who freed it."""

    __slots__ = ("count", "freed_by", "oid")

    def __init__(self, oid: int, count: int) -> None:
        self.oid = oid
        self.count = count
        self.freed_by = -1


def build(programs: list[list[tuple[Any, ...]]], rule: CounterRule, start: int, *, naive: bool = False) -> Any:
    """Threads over one counted object and one variable. Under a floor (``up``) a put that
    reaches zero frees the object; a get or put of a freed object is a use-after-free, a put
    below zero an underflow (only under a threshold: nothing acts on a count without one,
    counter C2), an object still alive at the end a leak. Under a ceiling
    (``up=False``) an update that ends above it is recorded (who passed the limit). ``naive``
    declares every update a read (unsound with a threshold: the audits must see it)."""

    def scenario(k: ds.Kernel) -> None:
        obj = Obj(k.new_oid(), start)
        ref = refcount_oid(obj.oid)
        mem = [0]
        seen: list[tuple[int, ...]] = []
        over: list[int] = []

        def update(tid: int, delta: int, op: str) -> None:
            if obj.freed_by >= 0:
                k.report("use-after-free", f"{op} of a freed object", rule="test", signature=f"uaf:{op}")
                return
            if naive:
                k.event(op, ref, False)
                obj.count += delta
            else:
                counter_add(k, obj, "count", delta, rule, op, ref)
            t = rule.threshold
            if t is not None and obj.count < 0:  # a count without a threshold (C2) is a statistic: no floor
                k.report("use-after-free", "refcount_t: underflow", rule="test", signature="underflow")
            elif t is not None and rule.up and obj.count < t and delta < 0:
                k.event("release", obj.oid, True)
                obj.freed_by = tid
            elif t is not None and not rule.up and obj.count > t:
                over.append(tid)

        def run(tid: int, prog: list[tuple[Any, ...]]) -> None:
            out: list[int] = []
            for o in prog:
                if o[0] == "get":
                    k.point("get", ref, rule.always_writes(o[1]) and not naive)
                    update(tid, o[1], "get")
                elif o[0] == "put":
                    k.point("put", ref, rule.always_writes(-o[1]) and not naive)
                    update(tid, -o[1], "put")
                elif o[0] == "check":
                    k.point("check", ref, True)  # an observer always writes: at its point (C4, C6)
                    counter_observe(k, "check", ref)
                    out.append(obj.count)
                elif o[0] == "read":
                    k.point("read", VAR, False)
                    out.append(mem[0])
                elif o[0] == "write":
                    k.point("write", VAR, True)
                    mem[0] = tid * 10 + len(out) + 1
            seen.append((tid, *out))

        for i, p in enumerate(programs):
            k.spawn(run, i, p, name=f"t{i}")

        def state() -> tuple[Any, ...]:
            if obj.freed_by < 0 and rule.up and rule.threshold is not None:
                k.report("leak", "object never freed", rule="test", signature="leak")
            return (obj.count, obj.freed_by, mem[0], tuple(sorted(seen)), tuple(over))

        k.ext["explore.state"] = state

    return scenario


count_op = st.one_of(
    st.tuples(st.sampled_from(["get", "put"]), st.integers(1, 2)),
    st.tuples(st.sampled_from(["check", "read", "write"])),
)
programs = st.lists(st.lists(count_op, min_size=1, max_size=3), min_size=2, max_size=3)
RULES = [
    CounterRule("floor", threshold=1, up=True),
    CounterRule("ceiling", threshold=3, up=False),
    CounterRule("none", threshold=None),
]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(programs, st.sampled_from(RULES), st.integers(1, 4))
def test_optimal_dpor_loses_no_terminal_state_on_counter_programs(
        progs: list[list[tuple[Any, ...]]], rule: CounterRule, start: int) -> None:
    res = audit(build(progs, rule, start), budget=4000, kernel_options=NO_LOCKDEP, por="odpor")
    if res.exhausted:
        assert res.ok, res.summary()


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(programs, st.sampled_from(RULES), st.integers(1, 4))
@example([[("put", 1)], [("put", 1), ("get", 1)]], RULES[2], 1)  # no threshold: puts may go below zero
def test_classic_dpor_loses_no_terminal_state_on_counter_programs(
        progs: list[list[tuple[Any, ...]]], rule: CounterRule, start: int) -> None:
    res = audit(build(progs, rule, start), budget=4000, kernel_options=NO_LOCKDEP, por="dpor")
    if res.exhausted:
        assert res.ok, res.summary()


def _executions(progs: list[list[tuple[Any, ...]]], rule: CounterRule, start: int) -> int:
    odpor = OptimalDPOR()
    run = run_job(build(progs, rule, start), [(odpor, 1000)], stop_on_first=False, coverage=False,
                  kernel_options=NO_LOCKDEP)
    assert odpor.complete and odpor.deviations == 0
    return run.executions


def test_increments_above_the_floor_commute() -> None:
    """Three threads taking a reference each, with the count at 1: one trace (six orders)."""
    assert _executions([[("get", 1)], [("get", 1)], [("get", 1)]], RULES[0], 1) == 1


def test_decrements_towards_the_floor_never_commute() -> None:
    """Two puts from 3 (each alone stays at or above 1): ordered, two traces -- from 2 the
    second of them would free in either order, and a sleep set judging the sleeping put by its
    first declaration would miss that (counter C5)."""
    assert _executions([[("put", 1)], [("put", 1)]], RULES[0], 3) == 2


def test_decrements_under_a_ceiling_commute() -> None:
    """Two decrements from the ceiling move away from it: one trace; two increments from
    below it are ordered (the second passes it)."""
    assert _executions([[("put", 1)], [("put", 1)]], RULES[1], 3) == 1
    assert _executions([[("get", 1)], [("get", 1)]], RULES[1], 2) == 2


def test_a_put_that_reaches_the_floor_is_ordered_with_every_put() -> None:
    """From 2, two puts: whichever runs second frees; both traces are explored."""
    res = audit(build([[("put", 1)], [("put", 1)]], RULES[0], 2), budget=100, kernel_options=NO_LOCKDEP,
                por="odpor")
    assert res.ok and {s[2][1] for s in res.dfs_states} == {0, 1}


def test_naive_declarations_lose_a_use_after_free() -> None:
    """Why counter C3 lets one direction commute only: a get and a put from 1 both declared
    reads look independent in the order get, put (1 -> 2 -> 1), and the reduction never runs
    put, get -- the release, then a get of the freed object."""
    progs = [[("get", 1)], [("put", 1)]]
    naive = audit(build(progs, RULES[0], 1, naive=True), budget=100, kernel_options=NO_LOCKDEP, por="odpor")
    assert naive.exhausted and not naive.ok
    assert any("uaf:get" in repr(s) for s in naive.missing_in_dpor)
    sound = audit(build(progs, RULES[0], 1), budget=100, kernel_options=NO_LOCKDEP, por="odpor")
    assert sound.ok and any("uaf:get" in repr(s) for s in sound.dfs_states)


@pytest.mark.parametrize(("before", "after", "up", "read"), [
    (1, 2, True, True), (0, 1, True, False), (3, 2, True, False), (2, 1, True, False),
    (1, 0, False, True), (2, 1, False, True), (2, 3, False, False), (1, 2, False, False),
])
def test_rule_declarations(before: int, after: int, up: bool, read: bool) -> None:
    assert CounterRule("r", threshold=1 if up else 2, up=up).commutes(before, after) is read
    assert CounterRule("r", threshold=None).commutes(before, after) is True


def _page_scenario(progs: list[list[str]]) -> Any:
    """Threads getting, putting and reading the count of one page frame (mm page R6)."""

    def scenario(k: ds.Kernel) -> None:
        alloc = page_allocator()
        owner = Obj(k.new_oid(), 0)
        page = alloc.alloc_page(GFP_KERNEL, owner)
        page.get()
        seen: list[tuple[int, ...]] = []

        def run(tid: int, prog: list[str]) -> None:
            out: list[int] = []
            for o in prog:
                if o == "get":
                    page.get()
                elif o == "put":
                    page.put()
                else:
                    k.point("page_count", refcount_oid(page.oid), False)
                    page_count_observe(page, "page_count")
                    out.append(page.refcount)
            seen.append((tid, *out))

        for i, p in enumerate(progs):
            k.spawn(run, i, p, name=f"t{i}")
        k.ext["explore.state"] = lambda: (page.refcount, page.gen, page.is_free, tuple(sorted(seen)))

    return scenario


page_programs = st.lists(st.lists(st.sampled_from(["get", "put", "count"]), min_size=1, max_size=3),
                         min_size=2, max_size=3)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(page_programs)
def test_page_references_lose_no_terminal_state(progs: list[list[str]]) -> None:
    """The page model's own declarations (get_page, put_page, a read of page_count) under
    optimal DPOR: the same terminal states and findings (a get or put of a freed frame is a bad
    page) as every interleaving."""
    res = audit(_page_scenario(progs), budget=4000, kernel_options=NO_LOCKDEP, por="odpor")
    if res.exhausted:
        assert res.ok, res.summary()


def test_gets_of_a_page_commute() -> None:
    """Three get_page of a held frame: one trace."""
    odpor = OptimalDPOR()
    run = run_job(_page_scenario([["get"], ["get"], ["get"]]), [(odpor, 1000)], stop_on_first=False,
                  coverage=False, kernel_options=NO_LOCKDEP)
    assert odpor.complete and run.executions == 1


def _fence_scenario(progs: list[list[str]]) -> Any:
    """Threads each owning one reference of a fence (count = threads + 1 for the scenario's,
    dropped first): ``put`` drops the thread's reference, ``get`` takes one more (a use after
    its put is a use-after-free), ``peek`` reads the count."""

    def scenario(k: ds.Kernel) -> None:
        tl = ds.dma.FenceContext("ring")
        f = tl.create()
        for _ in progs:
            f.get()
        f.signal()
        f.put()
        seen: list[tuple[int, ...]] = []

        def run(tid: int, prog: list[str]) -> None:
            out: list[int] = []
            for o in prog:
                k.point(o, refcount_oid(f.oid), False)
                if o == "put":
                    f.put()
                elif o == "get":
                    f.get()
                else:
                    counter_observe(k, "kref_read", refcount_oid(f.oid))
                    out.append(f.refcount)
            seen.append((tid, *out))

        for i, p in enumerate(progs):
            k.spawn(run, i, p, name=f"t{i}")
        k.ext["explore.state"] = lambda: (f.refcount, tuple(sorted(seen)))

    return scenario


def test_fence_puts_are_ordered_a_use_after_put_is_found() -> None:
    """dma_fence: one thread puts its reference and then gets one (a use after its put), the
    other puts its own. Only when the other thread's put runs first does the first one's put
    release the fence and its get find it freed. Non-releasing puts declared as reads of the
    count (as they were) made the reduction judge the two puts independent where it first met
    them, from 2, and never run the second order: the use-after-free was lost."""
    res = audit(_fence_scenario([["put", "get"], ["put"]]), budget=500, kernel_options=NO_LOCKDEP, por="odpor")
    assert res.ok, res.summary()
    assert any("use-after-free" in repr(s) for s in res.dpor_states)


def test_kref_get_on_zero_is_ordered_with_get_unless_zero() -> None:
    """A kref_get of a count at zero (a use-after-free) saturates it, after which a racing
    kref_get_unless_zero succeeds; before it, that one fails. The get is a write of the count
    there (counter C3), so both orders are explored."""
    from dmabufsim.kernel.lifetime import Kref

    def scenario(k: ds.Kernel) -> None:
        r = Kref("obj")
        r.put()
        got: list[bool] = []
        k.spawn(lambda: got.append(r.get_unless_zero()), name="lookup")
        k.spawn(r.get, name="user")
        k.ext["explore.state"] = lambda: (tuple(got),)

    res = audit(scenario, budget=200, kernel_options=NO_LOCKDEP, por="odpor")
    assert res.ok, res.summary()
    assert {s[2] for s in res.dpor_states} == {((False,),), ((True,),)}


def test_an_update_that_always_writes_declares_it_at_its_point() -> None:
    """Under a ceiling of 3 from 3, a get and a put-then-get: an increment always writes (counter
    C6). Declared only by the step's event, classic DPOR, which picks its backtracking points by
    the points' declarations, lost the order where the second thread's get passes the ceiling."""
    for por in ("dpor", "odpor"):
        res = audit(build([[("get", 1)], [("put", 1), ("get", 1)]], RULES[1], 3), budget=400,
                    kernel_options=NO_LOCKDEP, por=por)
        assert res.ok and len(res.dfs_states) == 3, res.summary()
