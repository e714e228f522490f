"""ww_mutex, as a property: any set of transactions that back off correctly all commit.

Random threads each lock a random list of mutexes of one class (duplicates
included: ``EALREADY`` skips them) with the standard back-off loop, under a
random schedule; some threads take single mutexes without a context. For
both algorithms: no finding, no hang, every transaction commits, and no two
threads ever own the same mutex.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

import dmabufsim as ds
from tests.helpers import run


def lock_all(ctx: ds.WWAcquireCtx, locks: list[ds.WWMutex]) -> list[ds.WWMutex]:
    """The kernel's acquire loop (``drm_exec`` / ``ttm_eu_reserve_buffers`` shape)."""
    contended: ds.WWMutex | None = None
    while True:
        held: list[ds.WWMutex] = []
        if contended is not None:
            contended.lock_slow(ctx)
            held.append(contended)
        failed: ds.WWMutex | None = None
        for m in locks:
            if m is contended:
                continue
            try:
                m.lock(ctx)
            except ds.EALREADY:
                continue
            except ds.EDEADLK:
                failed = m
                break
            held.append(m)
        if failed is None:
            return held
        for m in reversed(held):
            m.unlock()
        contended = failed


@settings(max_examples=60, deadline=None)
@given(
    wait_die=st.booleans(),
    nlocks=st.integers(2, 6),
    plans=st.lists(st.lists(st.integers(0, 5), min_size=1, max_size=5), min_size=2, max_size=5),
    plain=st.integers(0, 2),
    seed=st.integers(0, 2**16),
)
def test_every_transaction_commits(wait_die: bool, nlocks: int, plans: list[list[int]], plain: int, seed: int) -> None:
    cls = ds.WWClass("prop_class", wait_die=wait_die)
    owner: dict[int, str] = {}
    bad: list[str] = []
    committed: list[str] = []

    def take(k: ds.Kernel, name: str, held: list[ds.WWMutex]) -> None:
        for m in held:
            if m.oid in owner:
                bad.append(f"{name} and {owner[m.oid]} both own {m.name}")
            owner[m.oid] = name
        k.point("critical", 0, True)
        for m in held:
            del owner[m.oid]

    def transaction(k: ds.Kernel, name: str, locks: list[ds.WWMutex]) -> None:
        with ds.WWAcquireCtx(cls) as ctx:
            held = lock_all(ctx, locks)
            assert ctx.acquired == len(held) == len({m.oid for m in locks})
            ctx.done()
            take(k, name, held)
            for m in held:
                m.unlock()
        committed.append(name)

    def single(k: ds.Kernel, name: str, m: ds.WWMutex) -> None:
        with m:
            take(k, name, [m])
        committed.append(name)

    def scenario(k: ds.Kernel) -> None:
        mutexes = [ds.WWMutex(cls, f"m{i}") for i in range(nlocks)]
        for i, plan in enumerate(plans):
            k.spawn(transaction, k, f"tx{i}", [mutexes[j % nlocks] for j in plan], name=f"tx{i}")
        for i in range(plain):
            k.spawn(single, k, f"one{i}", mutexes[i % nlocks], name=f"one{i}")

    ex = run(scenario, seed=seed)
    assert ex.findings == [], [f.title for f in ex.findings]
    assert ex.outcome == "completed"
    assert bad == []
    assert sorted(committed) == sorted([f"tx{i}" for i in range(len(plans))] + [f"one{i}" for i in range(plain)])


def test_deadlock_report_names_the_ww_mutex() -> None:
    """Context-less ww_mutexes are plain mutexes: ABBA deadlocks, and the report names both objects."""
    cls = ds.WWClass("nameclass")

    def side(k: ds.Kernel, a: ds.WWMutex, b: ds.WWMutex, go: ds.Completion, other: ds.Completion) -> None:
        a.lock()
        go.complete()
        other.wait_for_completion()
        b.lock()

    def scenario(k: ds.Kernel) -> None:
        a, b = ds.WWMutex(cls, "bo_a"), ds.WWMutex(cls, "bo_b")
        ga, gb = ds.Completion("ga"), ds.Completion("gb")
        k.spawn(side, k, a, b, ga, gb, name="t1")
        k.spawn(side, k, b, a, gb, ga, name="t2")

    ex = run(scenario, seed=0)
    dl = ex.by_kind("deadlock")
    assert len(dl) == 1
    assert dl[0].details["waiting_for"] == {"t1": "bo_b", "t2": "bo_a"}
