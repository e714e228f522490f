"""The fault path: driver fault handlers under mmap_lock, user copies that fault, the page lock,
try_to_unmap, the OOM reaper with non-blockable notifiers (mm/memory.py, uaccess.py, page_lock.py,
rmap.py, memory.py R7/R8; page_lock R7)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import dmabufsim as ds
from dmabufsim.kernel.errors import EAGAIN, EFAULT, UsageError
from dmabufsim.mm import notifier_hooks as hooks
from dmabufsim.mm.gup import get_user_pages_fast
from dmabufsim.mm.memory import (
    FAULT_FLAG_ALLOW_RETRY,
    FAULT_FLAG_TRIED,
    VM_FAULT_RETRY,
    Process,
    VmFault,
    VmOperations,
)
from dmabufsim.mm.mmu_notifier import MMUNotifier, MMUNotifierOps, mmu_notifier_variant
from dmabufsim.mm.page import GFP_KERNEL, PAGE_SIZE, alloc_page, init_memory
from dmabufsim.mm.page_lock import (
    PageLocked,
    lock_page,
    set_page_dirty,
    trylock_page,
    unlock_page,
    wait_on_page_locked,
)
from dmabufsim.mm.rmap import shrink_page, try_to_unmap
from dmabufsim.mm.uaccess import copy_from_user, copy_from_user_inatomic, copy_to_user, get_user, put_user
from tests.helpers import run, run_first


class PagesVmOps(VmOperations):
    """A driver mapping backed by pages it owns; records each fault's context."""

    def __init__(self, nr: int, *, retry_first: bool = False, retry_holding: bool = False) -> None:
        super().__init__("test_vm_ops")
        self.pages = [alloc_page(GFP_KERNEL, self) for _ in range(nr)]
        self.log: list[tuple[int, int, bool]] = []
        self.retry_first = retry_first
        self.retry_holding = retry_holding

    def fault(self, vmf: VmFault) -> int:
        k = ds.current_kernel()
        self.log.append((vmf.pgoff, vmf.flags, k.lockdep.is_held(vmf.mm.mmap_lock.dep_map)))
        if self.retry_holding:
            return VM_FAULT_RETRY
        if self.retry_first and not vmf.flags & FAULT_FLAG_TRIED:
            vmf.release_mmap_lock()
            return VM_FAULT_RETRY
        return vmf.insert_page(self.pages[vmf.pgoff])


def test_a_driver_fault_runs_the_handler_under_mmap_lock_once_per_page() -> None:
    seen: list[Any] = []

    def scenario(k: ds.Kernel) -> None:
        ops = PagesVmOps(2)
        ops.pages[1].write(0, "hello")
        proc = Process("app")
        addr = proc.mmap(2 * PAGE_SIZE, vm_ops=ops)
        seen.append(proc.read(addr + PAGE_SIZE))
        seen.append(proc.read(addr + PAGE_SIZE))  # the PTE is there now: no second fault
        proc.write(addr, "w")
        seen.append(ops.pages[0].read(0))
        seen.append(ops.log)
        seen.append(ops.pages[1].refcount)  # the owner's reference and the PTE's

    ex = run_first(scenario)
    assert ex.findings == []
    assert seen[:3] == ["hello", "hello", "w"]
    assert [(pgoff, held) for pgoff, _flags, held in seen[3]] == [(1, True), (0, True)]
    assert all(flags & FAULT_FLAG_ALLOW_RETRY for _p, flags, _h in seen[3])
    assert seen[4] == 2


def test_copy_from_user_faults_into_the_bo_handler() -> None:
    got: list[Any] = []

    def scenario(k: ds.Kernel) -> None:
        ops = PagesVmOps(1)
        ops.pages[0].write(0, "bo data")
        proc = Process("app")
        addr = proc.mmap(PAGE_SIZE, vm_ops=ops)
        got.append(copy_from_user(proc.mm, addr, 8))
        got.append(ops.log)

    ex = run_first(scenario)
    assert ex.findings == []
    assert got[0] == ["bo data"]
    assert [(p, held) for p, _f, held in got[1]] == [(0, True)]


def test_a_handler_may_drop_mmap_lock_and_ask_for_a_retry() -> None:
    log: list[Any] = []

    def scenario(k: ds.Kernel) -> None:
        ops = PagesVmOps(1, retry_first=True)
        proc = Process("app")
        addr = proc.mmap(PAGE_SIZE, vm_ops=ops)
        proc.read(addr)
        log.extend(ops.log)

    ex = run_first(scenario)
    assert ex.findings == []
    assert [bool(f & FAULT_FLAG_TRIED) for _p, f, _h in log] == [False, True]


def test_retry_without_dropping_mmap_lock_is_a_usage_error() -> None:
    def scenario(k: ds.Kernel) -> None:
        ops = PagesVmOps(1, retry_holding=True)
        proc = Process("app")
        addr = proc.mmap(PAGE_SIZE, vm_ops=ops)
        with pytest.raises(UsageError, match="VM_FAULT_RETRY holding mmap_lock"):
            proc.read(addr)

    assert run_first(scenario).findings == []


def test_get_user_pages_refuses_a_driver_mapping() -> None:
    def scenario(k: ds.Kernel) -> None:
        proc = Process("app")
        addr = proc.mmap(PAGE_SIZE, vm_ops=PagesVmOps(1))
        with pytest.raises(EFAULT, match="VM_IO"):
            get_user_pages_fast(proc.mm, addr, 1)

    assert run_first(scenario).findings == []


def test_unmap_mapping_range_zaps_every_mapping_inside_a_clear_bracket() -> None:
    events: list[Any] = []

    class Rec(MMUNotifierOps):
        def invalidate_range_start(self, sub: MMUNotifier, range: hooks.MmuNotifierRange) -> None:
            events.append((range.event, range.start == addr_box[0]))

    addr_box: list[int] = []

    def scenario(k: ds.Kernel) -> None:
        ops = PagesVmOps(1)
        proc = Process("app")
        addr = proc.mmap(PAGE_SIZE, vm_ops=ops)
        addr_box.append(addr)
        proc.read(addr)
        MMUNotifier(Rec()).register(proc.mm)
        assert ops.unmap_mapping_range() == 1
        assert proc.mm.lookup(addr) is None
        proc.read(addr)  # faults again
        events.append(len(ops.log))

    ex = run_first(scenario)
    assert ex.findings == []
    assert events == [(hooks.MmuNotifyEvent.CLEAR, True), 2]


def test_copy_to_user_and_get_put_user_round_trip_and_efault() -> None:
    def scenario(k: ds.Kernel) -> None:
        proc = Process("app")
        addr = proc.mmap(2 * PAGE_SIZE)
        copy_to_user(proc.mm, addr, ["a", "b"])
        assert copy_from_user(proc.mm, addr, 2 * PAGE_SIZE) == ["a", "b"]
        put_user(proc.mm, addr + 8, 7)
        assert get_user(proc.mm, addr + 8) == 7
        with pytest.raises(EFAULT):
            copy_from_user(proc.mm, 0x10, 4)

    assert run_first(scenario).findings == []


def test_inatomic_copy_never_faults() -> None:
    def scenario(k: ds.Kernel) -> None:
        proc = Process("app")
        addr = proc.mmap(PAGE_SIZE)
        assert copy_from_user_inatomic(proc.mm, addr, 8) is None  # not present: would fault
        assert proc.mm.lookup(addr) is None
        proc.write(addr, 3)
        assert copy_from_user_inatomic(proc.mm, addr, 8) == [3]

    assert run_first(scenario).findings == []


def test_copy_from_user_under_a_reservation_is_reported_against_the_primed_order() -> None:
    def scenario(k: ds.Kernel) -> None:
        proc = Process("app")
        addr = proc.mmap(PAGE_SIZE)
        proc.write(addr, 1)  # present: no real fault, might_fault alone tells lockdep
        resv = ds.DmaResv("bo")
        with resv:
            copy_from_user(proc.mm, addr, 8)

    ex = run_first(scenario)
    assert ex.kinds == ["circular-locking"]
    assert ex.findings[0].details["chain"][0] == "mmap_lock"


def test_might_fault_in_atomic_context_is_a_sleeping_call() -> None:
    def scenario(k: ds.Kernel) -> None:
        proc = Process("app")
        addr = proc.mmap(PAGE_SIZE)
        proc.write(addr, 1)
        with ds.SpinLock("s"):
            copy_from_user(proc.mm, addr, 8)

    ex = run_first(scenario)
    assert ex.kinds == ["sleep-in-atomic"]
    assert ex.findings[0].details["call"] == "might_fault"


def test_uaccess_faults_option_lets_the_schedule_choose_faulted() -> None:
    def scenario(k: ds.Kernel) -> None:
        proc = Process("app")
        addr = proc.mmap(PAGE_SIZE)
        proc.write(addr, 1)
        copy_from_user(proc.mm, addr, 8)

    plain = ds.Kernel(seed=0).run(scenario)
    chosen = {len(ds.Kernel(seed=s, options={"uaccess_faults": True}).run(scenario).choices) for s in range(8)}
    assert chosen and min(chosen) == len(plain.choices) + 1  # one schedule-controlled "faulted?" choice


# -- the page lock


def test_page_lock_excludes_and_wakes_a_waiter() -> None:
    order: list[str] = []

    def scenario(k: ds.Kernel) -> None:
        init_memory(16)
        page = alloc_page(GFP_KERNEL, object())
        lock_page(page)

        def other() -> None:
            assert not trylock_page(page)
            lock_page(page)
            order.append("other")
            unlock_page(page)

        k.spawn(other, name="other")
        k.msleep(1)
        order.append("first")
        assert PageLocked(page)
        unlock_page(page)

    ex = run_first(scenario)
    assert ex.findings == []
    assert order == ["first", "other"]


def test_unlock_wakes_every_bit_waiter_and_one_locker() -> None:
    order: list[Any] = []

    def scenario(k: ds.Kernel) -> None:
        init_memory(16)
        page = alloc_page(GFP_KERNEL, object())
        lock_page(page)

        def watcher(name: str) -> None:
            wait_on_page_locked(page)  # folio_wait_locked: returns once unlocked, takes nothing
            order.append((name, page.locked_by is not None and page.locked_by.name))

        def locker() -> None:
            lock_page(page)
            order.append(("locker", "holds"))
            unlock_page(page)

        ts = [k.spawn(watcher, "w1", name="w1"), k.spawn(locker, name="locker"), k.spawn(watcher, "w2", name="w2")]
        k.msleep(1)
        assert [t.name for t in page.lock_watchers] == ["w1", "w2"]
        assert [t.name for t in page.lock_waiters] == ["locker"]
        order.append(("first", "unlocks"))
        unlock_page(page)
        for t in ts:
            k.join(t)

    ex = run_first(scenario)
    assert ex.findings == []
    # one unlock_page woke all three (folio_wake_bit); in this schedule each watcher ran while unlocked
    assert order == [("first", "unlocks"), ("w1", False), ("locker", "holds"), ("w2", False)]


def test_a_page_locked_forever_leaves_its_waiter_blocked_not_spinning() -> None:
    def scenario(k: ds.Kernel) -> None:
        init_memory(16)
        page = alloc_page(GFP_KERNEL, object())

        def holder() -> None:
            lock_page(page)  # and never unlock_page

        k.join(k.spawn(holder, name="holder"))
        wait_on_page_locked(page)

    ex = run_first(scenario)
    assert ex.kinds == ["deadlock"]


def test_lock_page_twice_is_recursive_and_hangs() -> None:
    def scenario(k: ds.Kernel) -> None:
        page = alloc_page(GFP_KERNEL, object())
        lock_page(page)
        lock_page(page)

    ex = run_first(scenario)
    assert ex.kinds == ["recursive-locking", "deadlock"]
    f = ex.findings[0]
    assert f.details["lock"] == "PG_locked" and f.rule.startswith("page_lock R3")


def test_unlock_of_an_unlocked_page_is_a_kernel_bug() -> None:
    def scenario(k: ds.Kernel) -> None:
        unlock_page(alloc_page(GFP_KERNEL, object()))

    ex = run_first(scenario)
    assert ex.kinds == ["assertion"] and ex.findings[0].signature == "unlock_page-unlocked"


def test_lock_page_in_atomic_context_is_reported() -> None:
    def scenario(k: ds.Kernel) -> None:
        page = alloc_page(GFP_KERNEL, object())
        with ds.SpinLock("s"):
            lock_page(page)
        unlock_page(page)

    ex = run_first(scenario)
    assert ex.kinds == ["sleep-in-atomic"] and ex.findings[0].details["call"] == "lock_page"


def test_unlocked_set_page_dirty_of_a_page_cache_page_races_with_the_holder() -> None:
    def scenario(k: ds.Kernel) -> None:
        proc = Process("app")
        addr = proc.mmap(PAGE_SIZE, shared=True)
        proc.write(addr, 1)
        page = proc.mm.lookup(addr)
        anon = alloc_page(GFP_KERNEL, object())
        assert page is not None
        holder_ready = ds.Completion("held")

        def holder() -> None:
            lock_page(page)
            lock_page(anon)
            holder_ready.complete()
            k.msleep(1)
            unlock_page(anon)
            unlock_page(page)

        k.spawn(holder, name="truncate")
        holder_ready.wait_for_completion()
        set_page_dirty(anon)  # anonymous: exempt
        set_page_dirty(page)

    ex = run_first(scenario)
    assert ex.kinds == ["assertion"]
    assert ex.findings[0].signature == "set_page_dirty-unlocked" and ex.findings[0].details["holder"] == "truncate"


# -- try_to_unmap and reclaim


class PageLockSeen(MMUNotifierOps):
    def __init__(self, log: list[Any]) -> None:
        self.log = log

    def invalidate_range_start(self, sub: MMUNotifier, range: hooks.MmuNotifierRange) -> None:
        page = range.mm.lookup(range.start)
        me = ds.current_kernel().current
        self.log.append((range.event, range.end - range.start, page is not None and page.locked_by is me))


def test_try_to_unmap_calls_the_notifiers_with_the_page_lock_held() -> None:
    log: list[Any] = []

    def scenario(k: ds.Kernel) -> None:
        proc = Process("app")
        addr = proc.mmap(PAGE_SIZE)
        proc.write(addr, 1)
        child = proc.fork()
        page = proc.mm.lookup(addr)
        assert page is not None and page.mapcount == 2
        MMUNotifier(PageLockSeen(log)).register(proc.mm)
        with pytest.raises(UsageError, match="without holding its page lock"):
            try_to_unmap(page)
        page.get()
        lock_page(page)
        assert try_to_unmap(page) == 2
        unlock_page(page)
        assert page.mapcount == 0 and proc.mm.lookup(addr) is None and child.mm.lookup(addr) is None
        page.put()
        assert page.is_free

    ex = run_first(scenario)
    assert ex.findings == []
    assert log == [(hooks.MmuNotifyEvent.CLEAR, PAGE_SIZE, True)]


def test_reclaim_skips_a_locked_page_and_frees_an_idle_one() -> None:
    def scenario(k: ds.Kernel) -> None:
        proc = Process("app")
        addr = proc.mmap(PAGE_SIZE)
        proc.write(addr, 1)
        page = proc.mm.lookup(addr)
        assert page is not None
        lock_page(page)
        assert not shrink_page(page)
        unlock_page(page)
        assert shrink_page(page)
        assert page.is_free and proc.mm.lookup(addr) is None
        assert proc.read(addr) == 0  # faulted back as a fresh zero page

    assert run_first(scenario).findings == []


# -- the OOM reaper and several notifiers


class Busy(MMUNotifierOps):
    """A secondary MMU whose lock is held by a driver thread; honours non-blockable ranges or not."""

    def __init__(self, log: list[Any], name: str, *, honour: bool) -> None:
        self.log = log
        self.name = name
        self.lock = ds.Mutex(f"{name}.lock")
        self.honour = honour

    def invalidate_range_start(self, sub: MMUNotifier, range: hooks.MmuNotifierRange) -> None:
        if self.honour and not range.blockable:
            if not self.lock.trylock():
                self.log.append((self.name, "EAGAIN"))
                raise EAGAIN("busy")
        else:
            self.lock.lock()
        self.log.append((self.name, "start"))
        self.lock.unlock()

    def invalidate_range_end(self, sub: MMUNotifier, range: hooks.MmuNotifierRange) -> None:
        self.log.append((self.name, "end"))


class Counter(MMUNotifierOps):
    def __init__(self, log: list[Any]) -> None:
        self.log = log

    def invalidate_range_start(self, sub: MMUNotifier, range: hooks.MmuNotifierRange) -> None:
        self.log.append(("kvm", "start"))

    def invalidate_range_end(self, sub: MMUNotifier, range: hooks.MmuNotifierRange) -> None:
        self.log.append(("kvm", "end"))


def _victim(log: list[Any], *, honour: bool, paired: bool = True) -> tuple[Process, int, Busy]:
    proc = Process("victim")
    addr = proc.mmap(PAGE_SIZE)
    proc.write(addr, 1)
    mmu_notifier_variant(proc.mm, paired_end=paired)
    MMUNotifier(Counter(log)).register(proc.mm)
    busy = Busy(log, "gpu", honour=honour)
    MMUNotifier(busy).register(proc.mm)
    return proc, addr, busy


@pytest.mark.parametrize("paired", [True, False])
def test_oom_reaper_with_a_refusing_notifier_leaves_the_range_and_pairs_ends(paired: bool) -> None:
    log: list[Any] = []
    result: list[Any] = []

    def scenario(k: ds.Kernel) -> None:
        proc, addr, busy = _victim(log, honour=True, paired=paired)
        busy.lock.lock()
        result.append(proc.mm.oom_reap())
        result.append(proc.mm.lookup(addr) is not None)  # left alone
        busy.lock.unlock()
        result.append(proc.mm.oom_reap())
        result.append(proc.mm.lookup(addr) is None)

    ex = run_first(scenario)
    assert ex.findings == []
    assert result == [False, True, True, True]
    first_try = [("kvm", "start"), ("gpu", "EAGAIN")] + ([("kvm", "end")] if paired else [])
    assert log == [*first_try, ("kvm", "start"), ("gpu", "start"), ("kvm", "end"), ("gpu", "end")]


def test_oom_reap_task_retries_until_the_notifier_accepts() -> None:
    log: list[Any] = []
    done: list[bool] = []

    def scenario(k: ds.Kernel) -> None:
        proc, _addr, busy = _victim(log, honour=True)

        def driver() -> None:
            with busy.lock:
                k.msleep(150)

        k.spawn(driver, name="driver")
        k.msleep(1)
        done.append(proc.mm.oom_reap_task())

    ex = run_first(scenario)
    assert ex.findings == []
    assert done == [True]
    assert log.count(("gpu", "EAGAIN")) == 2 and ex.now >= 200_000_000


def test_a_notifier_that_sleeps_in_the_reapers_range_is_reported() -> None:
    log: list[Any] = []

    def scenario(k: ds.Kernel) -> None:
        proc, _addr, _busy = _victim(log, honour=False)
        proc.mm.oom_reap()

    ex = run_first(scenario)
    assert ex.kinds == ["sleep-in-atomic"]
    f = ex.findings[0]
    assert f.details["call"] == "mutex_lock" and f.details["atomic"][0]["what"] == "non_block"


def test_faults_are_deterministic() -> None:
    def scenario(k: ds.Kernel) -> None:
        ops = PagesVmOps(2)
        proc = Process("app")
        addr = proc.mmap(2 * PAGE_SIZE, vm_ops=ops)
        k.spawn(proc.read, addr, name="a")
        k.spawn(proc.read, addr + PAGE_SIZE, name="b")
        k.spawn(ops.unmap_mapping_range, name="zap")

    for seed in range(5):
        a, b = run(scenario, seed), run(scenario, seed)
        assert a.trace_digest == b.trace_digest and a.findings == b.findings == []


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["read", "write", "zap"]), st.integers(0, 2)), max_size=12))
def test_a_driver_mapping_always_shows_the_objects_pages(ops: list[tuple[str, int]]) -> None:
    """memory R14/R15: whatever the order of accesses and revocations, the mapping reaches the
    object's own page, and each page holds one reference per PTE besides its owner's."""
    bad: list[str] = []

    def scenario(k: ds.Kernel) -> None:
        vm = PagesVmOps(3)
        proc = Process("app")
        addr = proc.mmap(3 * PAGE_SIZE, vm_ops=vm)
        shadow: dict[int, object] = {}
        for n, (op, i) in enumerate(ops):
            va = addr + i * PAGE_SIZE
            if op == "write":
                proc.write(va, n)
                shadow[i] = n
            elif op == "read":
                if proc.read(va) != shadow.get(i, 0):
                    bad.append(f"read {i}")
            else:
                vm.unmap_mapping_range()
            for j, page in enumerate(vm.pages):
                mapped = proc.mm.lookup(addr + j * PAGE_SIZE)
                if mapped is not None and mapped is not page:
                    bad.append(f"page {j} maps a foreign frame")
                if page.refcount != 1 + (mapped is not None):
                    bad.append(f"page {j} refcount {page.refcount}")

    assert run_first(scenario).findings == []
    assert bad == []
