"""page R8 / page_lock R10: a frame's page lock is declared apart from its bookkeeping.

What each lock path declares (``trylock_page``, ``lock_page``, ``unlock_page``, ``PageLocked``, a
wait on a migration entry) and what it no longer declares (the frame), the undeclared-access checker
catching a lock write declared on the bookkeeping, and the audits: on random small programs of page
lock, trylock and unlock, ``wait_on_page_locked``, ``set_page_dirty`` of a page-cache page (its R6
finding depends on who holds the lock), CPU stores, ``iommu_map`` / ``iommu_unmap`` of two frames,
optimal and classic DPOR reach exactly the terminal states and findings of DFS. A planted
``unlock_page`` that declares the frame instead of its lock is caught by the audit.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import dmabufsim as ds
from dmabufsim.device.device import Device
from dmabufsim.device.iommu import IOVA_BASE
from dmabufsim.explore import audit
from dmabufsim.kernel.errors import EBUSY
from dmabufsim.kernel.gfp import GFP_KERNEL
from dmabufsim.mm import page_lock as page_lock_mod
from dmabufsim.mm.page import PAGE_SIZE, Page, alloc_page, contents_oid, init_memory, lock_oid
from dmabufsim.mm.page_lock import (
    PageLocked,
    lock_page,
    set_page_dirty,
    trylock_page,
    unlock_page,
    wait_on_page_locked,
)

NO_LOCKDEP = {"lockdep": False}
#: An object no model path declares: the scheduling point of a thread's CPU store.
VAR = 40_000


class Cache:
    """A page-cache owner (a shmem file): dirtying its page unlocked races the lock holder (page_lock R6)."""

    __slots__ = ("name",)
    is_page_cache = True

    def __init__(self, name: str) -> None:
        self.name = name


def _decl(ex: ds.Execution, op: str) -> list[tuple[int, bool]]:
    return [(e.obj, e.write) for e in ex.events or [] if e.op == op]


def test_lock_steps_declare_the_lock_not_the_frame() -> None:
    got: dict[str, int] = {}

    def sc(k: ds.Kernel) -> None:
        init_memory(8)
        page = alloc_page(GFP_KERNEL, Cache("file"))
        got["page"] = page.oid
        assert trylock_page(page) and PageLocked(page)
        unlock_page(page)
        lock_page(page)
        unlock_page(page)
        wait_on_page_locked(page)

    ex = ds.Kernel(strategy=ds.FirstStrategy(), record_trace=True).run(sc)
    assert ex.findings == []
    p = got["page"]
    lk = lock_oid(p)
    assert lk not in (p, contents_oid(p))
    assert _decl(ex, "trylock_page") == [(lk, True)]
    assert _decl(ex, "lock_page") == [(lk, True)]
    assert _decl(ex, "unlock_page") == [(lk, True)] * 2
    assert _decl(ex, "PageLocked") == [(lk, False)]
    assert _decl(ex, "wait_on_page_locked") == [(lk, False)]
    lock_ops = {"trylock_page", "lock_page", "unlock_page", "PageLocked", "wait_on_page_locked"}
    assert not [e for e in ex.events or [] if e.op in lock_ops and e.obj == p]


def test_an_unlock_and_an_iommu_map_of_the_frame_commute() -> None:
    """The pair that kept S3/locked-copy's search busy: ``unlock_page`` against ``iommu_map`` of the
    same frame is no race any more, so optimal DPOR runs one trace of the two threads, not two."""

    def sc(k: ds.Kernel) -> None:
        init_memory(8)
        dev = Device("gpu0", gpuvm=False)
        page = alloc_page(GFP_KERNEL, Cache("file"))
        assert trylock_page(page)
        k.spawn(unlock_page, page, name="unlocker")
        mapper = k.spawn(dev.domain.map, IOVA_BASE, page, name="mapper")
        k.join(mapper)
        dev.domain.unmap(IOVA_BASE)

    rep = ds.explore(sc, "odpor", budget=100, confirm_cycles=False, kernel_options=NO_LOCKDEP)
    assert rep.verdict == "exhausted" and rep.executions == 1, (rep.verdict, rep.executions)


def test_the_access_checker_catches_a_lock_write_declared_on_the_frame() -> None:
    def scenario(k: ds.Kernel) -> None:
        init_memory(8)
        page = alloc_page(GFP_KERNEL, Cache("file"))

        def bad_lock() -> None:
            k.point("planted_lock", page.oid, True)  # the bookkeeping, not the lock
            page.locked_by = k.current

        def locker() -> None:
            if trylock_page(page):
                unlock_page(page)

        k.spawn(bad_lock, name="bad")
        k.spawn(locker, name="other")

    seen = set()
    for seed in range(6):
        ex = ds.Kernel(seed=seed, check_accesses=True, lockdep=False).run(scenario)
        found = ex.by_kind("undeclared-access")
        assert found, [f.title for f in ex.findings]
        assert {f.details["attribute"] for f in found} == {"locked_by"}
        seen.update(f.details["other_thread"] for f in found)
    assert seen == {"bad", "other"}


# ---------------------------------------------------------------- the audits against DFS

#: One thread's program over frames 0 and 1 (IOVA i maps frame i): ("lock", f) lock_page (skipped if
#: this thread holds it: R3 would hang), ("trylock", f), ("unlock", f) (of a frame this thread
#: holds; every frame still held is unlocked at the end), ("wait", f) wait_on_page_locked,
#: ("dirty", f) set_page_dirty unlocked (R6), ("store", f) a CPU store, ("map", f) / ("unmap", f).
op = st.tuples(st.sampled_from(["lock", "trylock", "unlock", "wait", "dirty", "store", "map", "unmap"]),
               st.integers(0, 1))
program = st.lists(op, min_size=1, max_size=3)


def build(programs: list[list[tuple[Any, ...]]], unlock: Any = None) -> Any:
    do_unlock = unlock or unlock_page

    def scenario(k: ds.Kernel) -> None:
        init_memory(8)
        dev = Device("gpu0", gpuvm=False)
        frames = [alloc_page(GFP_KERNEL, Cache(f"file{i}")) for i in range(2)]
        seen: list[tuple[Any, ...]] = []

        def run(tid: int, prog: list[tuple[Any, ...]]) -> None:
            got: list[object] = []
            held: list[Page] = []
            for n, (what, f) in enumerate(prog):
                page = frames[f]
                if what == "lock":
                    if page not in held:
                        lock_page(page)
                        held.append(page)
                elif what == "trylock":
                    ok = page not in held and trylock_page(page)
                    got.append(ok)
                    if ok:
                        held.append(page)
                elif what == "unlock":
                    if page in held:
                        held.remove(page)
                        do_unlock(page)
                elif what == "wait":
                    wait_on_page_locked(page)
                elif what == "dirty":
                    set_page_dirty(page)
                elif what == "store":
                    k.point("cpu", VAR, False)
                    page.write(0, f"t{tid}.{n}")
                elif what == "map":
                    try:
                        dev.domain.map(IOVA_BASE + f * PAGE_SIZE, page)
                    except EBUSY:
                        got.append("busy")
                else:
                    got.append(dev.domain.unmap(IOVA_BASE + f * PAGE_SIZE))
            for page in held:
                do_unlock(page)
            seen.append((tid, tuple(got)))

        for i, p in enumerate(programs):
            k.spawn(run, i, p, name=f"t{i}")

        def state() -> tuple[Any, ...]:
            return (tuple((p.read(0) if p.data else 0, p.dirty, len(p.dev_maps), p.locked_by is None)
                          for p in frames), tuple(sorted(seen)))

        k.ext["explore.state"] = state

    return scenario


_TRYLOCK_AFTER_UNLOCK = [[("trylock", 0), ("unlock", 0)], [("trylock", 0)]]
_DIRTY_UNDER_LOCK = [[("lock", 0), ("store", 0), ("unlock", 0)], [("dirty", 0), ("map", 0)]]
_WAIT_AND_MAP = [[("lock", 0), ("map", 0)], [("wait", 0), ("unmap", 0)]]


@pytest.mark.parametrize("por", ["odpor", "dpor"])
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(programs=st.lists(program, min_size=2, max_size=2))
@example(programs=_TRYLOCK_AFTER_UNLOCK)
@example(programs=_DIRTY_UNDER_LOCK)
@example(programs=_WAIT_AND_MAP)
@example(programs=[[("lock", 0), ("lock", 1)], [("lock", 1), ("lock", 0)]])
def test_dpor_matches_dfs_on_page_locks(por: str, programs: list[list[tuple[Any, ...]]]) -> None:
    res = audit(build(programs), budget=20_000, kernel_options=NO_LOCKDEP, por=por)
    assert res.exhausted, res.summary()
    assert res.ok, res.summary()


@pytest.mark.slow
@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(programs=st.lists(st.lists(op, min_size=1, max_size=2), min_size=3, max_size=3))
def test_dpor_reaches_what_dfs_reaches_within_two_preemptions_on_three_threads(
    programs: list[list[tuple[Any, ...]]],
) -> None:
    """Three threads: a page-lock operation takes several scheduling points, so unbounded DFS does
    not finish even three lone ``lock_page`` calls within 20,000 executions. Optimal and classic
    DPOR (unbounded) must exhaust and reach every terminal state and finding DFS reaches within two
    preemptions."""
    from dmabufsim.explore.dfs import DFS
    from dmabufsim.explore.dpor import DPOR
    from dmabufsim.explore.job import run_job
    from dmabufsim.explore.odpor import OptimalDPOR

    sc = build(programs)
    common: dict[str, Any] = {
        "stop_on_first": False, "collect_states": True, "coverage": False, "kernel_options": NO_LOCKDEP,
    }
    dfs = DFS(2)
    bounded = run_job(sc, [(dfs, 20_000)], **common)
    assert dfs.complete
    for por in (OptimalDPOR(), DPOR()):
        res = run_job(sc, [(por, 20_000)], **common)
        assert por.complete
        assert set(bounded.states) <= set(res.states), type(por).__name__
        assert set(bounded.findings) <= set(res.findings), type(por).__name__


def test_the_audit_sees_the_unlocked_dirty_finding_and_its_absence() -> None:
    res = audit(build(_DIRTY_UNDER_LOCK), budget=20_000, kernel_options=NO_LOCKDEP, por="odpor")
    assert res.exhausted and res.ok, res.summary()
    dirty = ["set_page_dirty-unlocked" in set(s) for _, s, _ in res.dpor_states]
    assert set(dirty) == {True, False}  # dirtied while t0 held the lock, and before or after


def _unlock_against_trylock(unlock: Any) -> Any:
    """The page is locked; one thread unlocks it (``unlock``), another trylocks it: the trylock
    succeeds exactly when it comes after the unlock."""

    def scenario(k: ds.Kernel) -> None:
        init_memory(8)
        page = alloc_page(GFP_KERNEL, Cache("file"))
        assert trylock_page(page)
        got: list[bool] = []

        def tryer() -> None:
            got.append(trylock_page(page))

        k.spawn(unlock, page, name="unlocker")
        k.spawn(tryer, name="tryer")
        k.ext["explore.state"] = lambda: (tuple(got), page.locked_by is None)

    return scenario


def test_an_unlock_declaring_the_frame_is_caught_by_the_audit() -> None:
    """The planted bug: ``unlock_page`` declaring the frame's bookkeeping instead of its lock. The
    trylock and the unlock then look independent, and one of the two outcomes is lost."""

    def unlock_declaring_the_frame(page: Page) -> None:
        k = page.alloc.k
        k.point("unlock_page", page.oid, True)
        page.locked_by = None
        for w in page.lock_watchers:
            k.wake(w)
        for w in page.lock_waiters:
            if k.wake(w):
                break

    good = audit(_unlock_against_trylock(unlock_page), budget=20_000, kernel_options=NO_LOCKDEP, por="odpor")
    assert good.exhausted and good.ok, good.summary()
    assert {st[2] for st in good.dfs_states} == {((False,), True), ((True,), False)}
    bad = audit(_unlock_against_trylock(unlock_declaring_the_frame), budget=20_000, kernel_options=NO_LOCKDEP,
                por="odpor")
    assert bad.exhausted and not bad.ok
    assert len(bad.dpor_states) == 1 and len(bad.dfs_states) == 2


def test_page_lock_module_keeps_its_rule_numbers() -> None:
    doc = page_lock_mod.__doc__ or ""
    assert "* R10 (what a lock step declares)" in doc
