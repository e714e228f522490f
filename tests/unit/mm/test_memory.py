"""Address spaces: faults, fork with copy-on-write, mprotect, munmap, madvise, pins, notifier hook order."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import dmabufsim as ds
import dmabufsim.check  # installs the isolation checker
from dmabufsim import mm
from dmabufsim.kernel.errors import EAGAIN
from tests.helpers import run_first

P = mm.PAGE_SIZE


def test_fork_cow_writes_are_private() -> None:
    out: dict[str, Any] = {}

    def scenario(k: ds.Kernel) -> None:
        parent = mm.Process("parent")
        a = parent.mmap(2 * P)
        parent.write(a, "p0")
        parent.write(a + P, "shared-before-fork")
        child = parent.fork("child")
        shared = parent.mm.lookup(a)
        out["shared_before"] = shared is child.mm.lookup(a)
        child.write(a, "c1")
        parent.write(a + 8, "p1")
        out["parent"] = (parent.read(a), parent.read(a + 8), parent.read(a + P))
        out["child"] = (child.read(a), child.read(a + 8), child.read(a + P))
        pp, cp = parent.mm.lookup(a), child.mm.lookup(a)
        assert pp is not None and cp is not None
        out["owners"] = (pp.owner is parent.mm, cp.owner is child.mm, pp is not cp)
        # The untouched second page is still one frame mapped twice.
        p2 = parent.mm.lookup(a + P)
        assert p2 is not None
        out["second"] = (p2 is child.mm.lookup(a + P), p2.mapcount, p2.refcount)

    ex = run_first(scenario)
    assert ex.findings == []
    assert out["shared_before"] is True
    assert out["parent"] == ("p0", "p1", "shared-before-fork")
    assert out["child"] == ("c1", 0, "shared-before-fork")
    assert out["owners"] == (True, True, True)
    assert out["second"] == (True, 2, 2)


def test_parent_breaking_cow_leaves_old_page_to_child() -> None:
    out: dict[str, Any] = {}

    def scenario(k: ds.Kernel) -> None:
        parent = mm.Process("parent")
        a = parent.mmap(P)
        parent.write(a, 1)
        old = parent.mm.lookup(a)
        child = parent.fork("child")
        gen = old.gen if old else -1
        parent.write(a, 2)  # parent copies; the old frame is the child's alone now
        assert old is not None
        out["old"] = (old.owner is child.mm, old.mapcount, old.gen == gen, child.read(a))
        out["new_owner"] = parent.mm.lookup(a).owner is parent.mm  # type: ignore[union-attr]

    ex = run_first(scenario)
    assert ex.findings == []
    assert out == {"old": (True, 1, True, 1), "new_owner": True}


def test_mprotect_read_only_makes_writes_fault() -> None:
    out: dict[str, Any] = {}

    def scenario(k: ds.Kernel) -> None:
        p = mm.Process("p")
        a = p.mmap(2 * P)
        p.write(a, "x")
        p.mprotect(a, P, mm.PROT_READ)
        try:
            p.write(a, "y")
            out["write"] = "ok"
        except ds.EFAULT as e:
            out["write"] = f"EFAULT: {e}"
        out["read"] = p.read(a)
        p.write(a + P, "second page unaffected")
        out["vmas"] = [(v.start - a, v.end - a, v.prot) for v in p.mm.vmas]
        p.mprotect(a, P, mm.PROT_READ | mm.PROT_WRITE)
        p.write(a, "z")
        out["after"] = p.read(a)

    ex = run_first(scenario)
    assert ex.findings == []
    assert out["write"].startswith("EFAULT: p: write to read-only")
    assert out["read"] == "x"
    assert out["vmas"] == [(0, P, mm.PROT_READ), (P, 2 * P, mm.PROT_READ | mm.PROT_WRITE)]
    assert out["after"] == "z"


def test_munmap_frees_unreferenced_pages_and_faults_after() -> None:
    out: dict[str, Any] = {}

    def scenario(k: ds.Kernel) -> None:
        alloc = mm.init_memory(64, low=2)
        p = mm.Process("p")
        a = p.mmap(4 * P)
        p.populate(a, 4 * P, value=7)
        pages = [p.mm.lookup(a + i * P) for i in range(4)]
        gens = [pg.gen for pg in pages if pg]
        out["free_mapped"] = alloc.nr_free
        p.munmap(a, 4 * P)
        out["free_after"] = alloc.nr_free
        out["pages"] = [(pg.is_free, pg.gen - g) for pg, g in zip(pages, gens, strict=True) if pg]
        try:
            p.read(a)
        except ds.EFAULT:
            out["read_after"] = "EFAULT"

    ex = run_first(scenario)
    assert ex.findings == []
    assert out["free_mapped"] == 60
    assert out["free_after"] == 64
    assert out["pages"] == [(True, 1)] * 4
    assert out["read_after"] == "EFAULT"


def test_pinned_pages_survive_munmap_until_unpinned() -> None:
    out: dict[str, Any] = {}

    def scenario(k: ds.Kernel) -> None:
        p = mm.Process("p")
        a = p.mmap(2 * P)
        p.write(a, "keep")
        pages = mm.pin_user_pages_fast(p.mm, a, 2, mm.FOLL_WRITE | mm.FOLL_LONGTERM)
        p.munmap(a, 2 * P)
        out["during"] = [(pg.is_free, pg.pincount, pg.refcount, pg.mapcount, pg.owner is p.mm) for pg in pages]
        out["data"] = pages[0].read(0)
        mm.unpin_user_pages_dirty_lock(pages, make_dirty=True)
        out["after"] = [pg.is_free for pg in pages]

    ex = run_first(scenario)
    assert ex.findings == []
    assert out["during"] == [(False, 1, 1, 0, True)] * 2
    assert out["data"] == "keep"
    assert out["after"] == [True, True]


def test_fork_copies_pinned_pages_for_the_child() -> None:
    out: dict[str, Any] = {}

    def scenario(k: ds.Kernel) -> None:
        p = mm.Process("p")
        a = p.mmap(P)
        p.write(a, 1)
        (pinned,) = mm.pin_user_pages_fast(p.mm, a, 1, mm.FOLL_WRITE)
        c = p.fork()
        cp = c.mm.lookup(a)
        out["copy"] = (cp is not pinned, cp.owner is c.mm if cp else None, c.read(a))
        p.write(a, 2)  # no COW: the pinned page stays the parent's
        out["parent_same"] = p.mm.lookup(a) is pinned
        out["child_sees"] = c.read(a)
        mm.unpin_user_page(pinned)

    ex = run_first(scenario)
    assert ex.findings == []
    assert out == {"copy": (True, True, 1), "parent_same": True, "child_sees": 1}


def test_gup_write_breaks_cow_and_get_needs_mmap_lock() -> None:
    out: dict[str, Any] = {}

    def scenario(k: ds.Kernel) -> None:
        p = mm.Process("p")
        a = p.mmap(P)
        p.write(a, 1)
        c = p.fork()
        shared = p.mm.lookup(a)
        p.mm.mmap_lock.down_read()
        (pg,) = mm.get_user_pages(p.mm, a, 1, mm.FOLL_WRITE)
        p.mm.mmap_lock.up_read()
        out["cow"] = (pg is not shared, pg is p.mm.lookup(a), pg.gup_refs, shared is c.mm.lookup(a))
        mm.put_page(pg)
        try:
            mm.get_user_pages(p.mm, a, 1, mm.FOLL_LONGTERM)
        except ds.EINVAL:
            out["longterm"] = "EINVAL"
        try:
            mm.get_user_pages_fast(p.mm, a + 16 * P, 1)
        except ds.EFAULT:
            out["unmapped"] = "EFAULT"
        mm.get_user_pages(p.mm, a, 1)[0].put()  # without mmap_lock: an assertion finding

    ex = run_first(scenario)
    assert out == {"cow": (True, True, 1, True), "longterm": "EINVAL", "unmapped": "EFAULT"}
    assert ex.kinds == ["assertion"]
    assert ex.findings[0].title == "WARNING: lockdep_assert_held(mmap_lock) failed"


def test_madvise_dontneed_and_shared_mappings() -> None:
    out: dict[str, Any] = {}

    def scenario(k: ds.Kernel) -> None:
        p = mm.Process("p")
        a = p.mmap(P)
        p.write(a, "gone")
        p.madvise(a, P, mm.MADV_DONTNEED)
        out["dontneed"] = p.read(a)
        s = p.mmap(P, shared=True)
        p.write(s, "from parent")
        c = p.fork()
        c.write(s + 8, "from child")
        out["shared"] = (p.read(s + 8), c.read(s))
        sp = p.mm.lookup(s)
        out["owner"] = type(sp.owner).__name__ if sp else None
        c.exit()
        p.exit()
        out["freed"] = sp.is_free if sp else None

    ex = run_first(scenario)
    assert ex.findings == []
    assert out == {"dontneed": 0, "shared": ("from child", "from parent"), "owner": "ShmemObject", "freed": True}


class Recorder:
    """A subscriber recording each callback, whether the page is still mapped, and the locks held."""

    def __init__(self, k: ds.Kernel, probe: int, log: list[tuple[Any, ...]]) -> None:
        self.k = k
        self.probe = probe
        self.log = log
        self.mm: mm.MmStruct | None = None

    def _state(self, rng: mm.MmuNotifierRange) -> tuple[bool, bool]:
        mapped = rng.mm.lookup(self.probe) is not None
        held = self.k.lockdep.is_held(rng.mm.mmap_lock.dep_map)
        return mapped, held

    def invalidate_range_start(self, rng: mm.MmuNotifierRange) -> None:
        self.log.append(("start", rng.mm.name, rng.event.value, rng.blockable, *self._state(rng)))

    def invalidate_range_end(self, rng: mm.MmuNotifierRange) -> None:
        self.log.append(("end", rng.mm.name, rng.event.value, rng.blockable, *self._state(rng)))


def test_notifier_hooks_bracket_every_pte_removal_in_order() -> None:
    log: list[tuple[Any, ...]] = []

    def scenario(k: ds.Kernel) -> None:
        p = mm.Process("p")
        a = p.mmap(2 * P)
        rec = Recorder(k, a, log)
        p.mm.notifier_subscribe(rec)
        p.write(a, 1)
        c = p.fork("c")  # PROTECTION_PAGE on the parent
        p.write(a, 2)  # COW break: CLEAR
        p.mprotect(a, P, mm.PROT_READ)  # PROTECTION_VMA
        p.madvise(a + P, P)  # CLEAR (probe page stays mapped)
        p.munmap(a, P)  # UNMAP: mapped at start, gone at end
        p.exit()  # RELEASE
        c.exit()

    ex = run_first(scenario)
    assert ex.findings == []
    assert log == [
        ("start", "p", "protection_page", True, True, True),
        ("end", "p", "protection_page", True, True, True),
        ("start", "p", "clear", True, True, True),
        ("end", "p", "clear", True, True, True),
        ("start", "p", "protection_vma", True, True, True),
        ("end", "p", "protection_vma", True, True, True),
        ("start", "p", "clear", True, True, True),
        ("end", "p", "clear", True, True, True),
        ("start", "p", "unmap", True, True, True),
        ("end", "p", "unmap", True, False, True),
        ("start", "p", "release", True, False, True),
        ("end", "p", "release", True, False, True),
    ]


class Refuser:
    def __init__(self, log: list[str], name: str, refuse: bool) -> None:
        self.log, self.name, self.refuse = log, name, refuse

    def invalidate_range_start(self, rng: mm.MmuNotifierRange) -> None:
        if self.refuse and not rng.blockable:
            self.log.append(f"{self.name}:EAGAIN")
            raise EAGAIN("busy")
        if self.refuse:
            self.log.append(f"{self.name}:EAGAIN-in-blockable")
            raise EAGAIN("busy")
        self.log.append(f"{self.name}:start")

    def invalidate_range_end(self, rng: mm.MmuNotifierRange) -> None:
        self.log.append(f"{self.name}:end")


def test_nonblockable_range_eagain_ends_the_started_subscribers() -> None:
    log: list[str] = []
    out: dict[str, str] = {}

    def scenario(k: ds.Kernel) -> None:
        m = mm.MmStruct("m")
        m.notifier_subscribe(Refuser(log, "a", False))
        m.notifier_subscribe(Refuser(log, "b", True))
        m.notifier_subscribe(Refuser(log, "c", False))
        rng = mm.MmuNotifierRange(m, 0, P, mm.MmuNotifyEvent.UNMAP, blockable=False)
        try:
            mm.invalidate_range_start(rng)
        except EAGAIN:
            out["nonblock"] = "EAGAIN"
        log.append("--")
        rng2 = mm.MmuNotifierRange(m, 0, P, mm.MmuNotifyEvent.UNMAP)
        mm.invalidate_range_start(rng2)
        mm.invalidate_range_end(rng2)

    ex = run_first(scenario)
    assert out == {"nonblock": "EAGAIN"}
    assert log == ["a:start", "b:EAGAIN", "a:end", "--", "a:start", "b:EAGAIN-in-blockable", "c:start",
                   "a:end", "b:end", "c:end"]
    assert ex.kinds == ["assertion"]
    assert ex.findings[0].title == "WARNING: blockable mmu_notifier invalidate_range_start failed"


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["pw", "cw", "fork", "pin", "unpin", "dontneed", "ro", "rw"]),
                          st.integers(0, 3), st.integers(0, 1000)), max_size=30))
def test_cow_isolation_and_refcount_invariants(ops: list[tuple[str, int, int]]) -> None:
    """Each process reads back exactly what it wrote; refcounts match mappers + pins + gup refs."""
    failures: list[str] = []

    def scenario(k: ds.Kernel) -> None:
        alloc = mm.init_memory(256, low=4)
        procs = [mm.Process("p0")]
        base = procs[0].mmap(4 * P)
        model: list[dict[int, object]] = [{}]
        writable = [True]
        pins: list[mm.Page] = []
        for op, i, v in ops:
            if op == "fork":
                if len(procs) < 3:
                    procs.append(procs[0].fork(f"p{len(procs)}"))
                    model.append(dict(model[0]))
                    writable.append(writable[0])
                continue
            who = 0 if op != "cw" else len(procs) - 1
            p = procs[who]
            addr = base + i * P
            if op in ("pw", "cw"):
                try:
                    p.write(addr, v)
                    model[who][i] = v
                    if not writable[who]:
                        failures.append("write to read-only succeeded")
                except ds.EFAULT:
                    if writable[who]:
                        failures.append("write to writable faulted")
            elif op == "pin":
                pins.extend(mm.pin_user_pages_fast(procs[0].mm, addr, 1))
            elif op == "unpin" and pins:
                mm.unpin_user_page(pins.pop())
            elif op == "dontneed":
                procs[0].madvise(addr, P)
                model[0].pop(i, None)
            elif op == "ro":
                procs[0].mprotect(base, 4 * P, mm.PROT_READ)
                writable[0] = False
            elif op == "rw":
                procs[0].mprotect(base, 4 * P, mm.PROT_READ | mm.PROT_WRITE)
                writable[0] = True
        for who, p in enumerate(procs):
            for i in range(4):
                got = p.read(base + i * P)
                if got != model[who].get(i, 0):
                    failures.append(f"{p.name} page {i}: read {got!r}, wrote {model[who].get(i, 0)!r}")
        used = 0
        for pg in alloc.frames:
            if pg.is_free:
                continue
            used += 1
            if pg.refcount != pg.mapcount + pg.pincount + pg.gup_refs:
                failures.append(f"refcount {pg!r}")
        if used + alloc.nr_free != alloc.nr_pages:
            failures.append("frames lost")
        for pg in pins:
            mm.unpin_user_page(pg)
        for p in procs:
            p.exit()
        if alloc.nr_free != alloc.nr_pages:
            failures.append(f"{alloc.nr_pages - alloc.nr_free} frames leaked after exit")

    ex = run_first(scenario)
    assert ex.findings == []
    assert failures == []


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_user_accesses_are_deterministic(seed: int) -> None:
    def scenario(k: ds.Kernel) -> None:
        p = mm.Process("p")
        a = p.mmap(4 * P)

        def writer(proc: mm.Process, base: int, tag: str) -> None:
            for i in range(4):
                proc.write(base + i * P, tag)

        c = p.fork()
        k.spawn(writer, p, a, "p", name="pw")
        k.spawn(writer, c, a, "c", name="cw")

    a = ds.Kernel(seed=seed).run(scenario)
    b = ds.Kernel(seed=seed).run(scenario)
    assert a.trace_digest == b.trace_digest
    assert a.findings == []


def test_oom_reaper_uses_nonblockable_ranges_and_skips_refusals() -> None:
    log: list[str] = []
    out: dict[str, Any] = {}

    class Busy:
        """Refuses non-blockable invalidations of the first mapping only."""

        def __init__(self, busy_start: int) -> None:
            self.busy_start = busy_start

        def invalidate_range_start(self, rng: mm.MmuNotifierRange) -> None:
            log.append(f"start {rng.event.value} blockable={rng.blockable} {rng.start == self.busy_start}")
            if not rng.blockable and rng.start == self.busy_start:
                raise EAGAIN("busy")

        def invalidate_range_end(self, rng: mm.MmuNotifierRange) -> None:
            log.append("end")

    def scenario(k: ds.Kernel) -> None:
        p = mm.Process("victim")
        a = p.mmap(P)
        b = p.mmap(P)
        p.write(a, 1)
        p.write(b, 2)
        p.mm.notifier_subscribe(Busy(a))
        out["first"] = p.mm.oom_reap()
        out["mapped"] = (p.mm.lookup(a) is not None, p.mm.lookup(b) is not None)
        p.mm.mmap_lock.down_write()
        out["locked"] = p.mm.oom_reap()  # trylock fails: nothing happens
        p.mm.mmap_lock.up_write()
        p.exit()

    ex = run_first(scenario)
    assert ex.findings == []
    assert out == {"first": False, "mapped": (True, False), "locked": False}
    assert log[:3] == ["start unmap blockable=False True", "start unmap blockable=False False", "end"]
