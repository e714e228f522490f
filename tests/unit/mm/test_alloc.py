"""The page allocator: watermarks, direct reclaim through shrinkers, gfp contexts, fault injection."""

from __future__ import annotations

from typing import Any

import dmabufsim as ds
import dmabufsim.check  # installs the isolation checker
from dmabufsim import mm
from dmabufsim.kernel.gfp import GFP, GFP_ATOMIC, GFP_KERNEL, GFP_NOFS, GFP_NOIO, GFP_NOWAIT, memalloc_noio
from dmabufsim.locking.annotations import fs_reclaim_map
from tests.helpers import run_first


class Cache:
    """A kernel object owning frames it can give back."""

    name = "cache"

    def __init__(self) -> None:
        self.oid = 0
        self.pages: list[mm.Page] = []


class CacheShrinker(mm.Shrinker):
    """Frees cached frames on request, recording the context it ran in."""

    def __init__(self, cache: Cache, k: ds.Kernel, log: list[Any], *, stop: bool = False) -> None:
        super().__init__("cache_shrinker")
        self.cache, self.kern, self.log, self.stop = cache, k, log, stop

    def count_objects(self, sc: mm.ShrinkControl) -> int:
        return len(self.cache.pages) or mm.SHRINK_EMPTY

    def scan_objects(self, sc: mm.ShrinkControl) -> int:
        t = self.kern.current
        self.log.append(("scan", sc.nr_to_scan, t.in_reclaim, self.kern.lockdep.is_held(fs_reclaim_map()),
                         sc.gfp_mask == GFP_KERNEL))
        if self.stop:
            return mm.SHRINK_STOP
        n = 0
        while self.cache.pages and n < sc.nr_to_scan:
            mm.free_page(self.cache.pages.pop())
            n += 1
        sc.nr_scanned = n
        return n


def test_reclaim_runs_shrinkers_under_pressure() -> None:
    log: list[Any] = []
    out: dict[str, Any] = {}

    def scenario(k: ds.Kernel) -> None:
        alloc = mm.init_memory(32, low=4, min=2)
        cache = Cache()
        CacheShrinker(cache, k, log).register()
        for _ in range(27):  # 5 free left: above low, no reclaim yet
            cache.pages.append(mm.alloc_page(GFP_KERNEL, cache))
        out["before"] = (alloc.nr_free, alloc.stats.direct_reclaims, log[:])
        user = mm.alloc_page(GFP_KERNEL, "user")  # at the low watermark now? 5 > 4: no
        out["still_fast"] = alloc.stats.direct_reclaims
        user2 = mm.alloc_page(GFP_KERNEL, "user")  # 4 free == low: reclaim
        out["after"] = (alloc.nr_free, alloc.stats.direct_reclaims, alloc.stats.reclaimed)
        out["pages"] = (user.owner, user2.owner)

    ex = run_first(scenario)
    assert ex.findings == []
    assert out["before"] == (5, 0, [])
    assert out["still_fast"] == 0
    # Reclaim asked for 2*low+1-free = 5 frames, freed them, then the allocation took one.
    assert log == [("scan", 5, 1, True, True)]
    assert out["after"] == (8, 1, 5)
    assert out["pages"] == ("user", "user")


def test_nofs_reclaim_does_not_take_fs_reclaim_and_atomic_never_reclaims() -> None:
    log: list[Any] = []
    out: dict[str, Any] = {}

    def scenario(k: ds.Kernel) -> None:
        alloc = mm.init_memory(16, low=4, min=2)
        cache = Cache()
        CacheShrinker(cache, k, log).register()
        for _ in range(12):
            cache.pages.append(mm.alloc_page(GFP_NOWAIT, cache))
        mm.alloc_page(GFP_ATOMIC, "irq")  # 4 free: atomic does not reclaim, takes one
        out["atomic"] = (alloc.nr_free, alloc.stats.direct_reclaims)
        mm.alloc_page(GFP_NOFS, "fs")  # reclaims without fs_reclaim held
        with memalloc_noio():
            mm.alloc_page(GFP_KERNEL, "io")  # scope makes it NOIO
        out["reclaims"] = alloc.stats.direct_reclaims

    ex = run_first(scenario)
    assert ex.findings == []
    assert out["atomic"] == (3, 0)
    assert [entry[3] for entry in log] == [False]  # NOFS pass freed enough; fs_reclaim not held
    assert out["reclaims"] == 1


def test_enomem_when_nothing_frees_and_reserves() -> None:
    out: dict[str, Any] = {}
    log: list[Any] = []

    def scenario(k: ds.Kernel) -> None:
        alloc = mm.init_memory(8, low=3, min=2)
        cache = Cache()
        CacheShrinker(cache, k, log, stop=True).register()
        cache.pages.append(mm.alloc_page(GFP_KERNEL, cache))
        held = [mm.alloc_page(GFP_KERNEL, "hog") for _ in range(5)]  # 2 free: the min reserve
        try:
            mm.alloc_page(GFP_KERNEL | GFP.NORETRY, "late")
        except ds.ENOMEM as e:
            out["kernel"] = str(e)
        try:
            mm.alloc_page(GFP_NOWAIT, "late")
        except ds.ENOMEM:
            out["nowait"] = "ENOMEM"
        a = mm.alloc_page(GFP_ATOMIC, "irq")
        b = mm.alloc_page(GFP_ATOMIC, "irq")
        try:
            mm.alloc_page(GFP_ATOMIC, "irq")
        except ds.ENOMEM:
            out["atomic_empty"] = alloc.nr_free
        out["atomic"] = (a.owner, b.owner, len(held))
        out["stats"] = (alloc.stats.failed, alloc.stats.direct_reclaims)

    ex = run_first(scenario)
    assert ex.findings == []
    assert out["kernel"] == "alloc_page(GFP_KERNEL|__GFP_NORETRY): out of memory (2 free, reserve 2)"
    assert out["nowait"] == "ENOMEM"
    assert out["atomic_empty"] == 0
    assert out["atomic"] == ("irq", "irq", 5)
    # Reclaim ran for the 5th hog (at the low watermark) and for the NORETRY attempt.
    assert out["stats"] == (3, 2)
    # SHRINK_STOP after the first batch: one scan call per pass, no retry after no progress.
    assert len(log) == 2


def test_injected_failure_is_handled_by_the_caller() -> None:
    out: dict[str, Any] = {}

    def driver_alloc(n: int) -> list[mm.Page]:
        """A driver allocating n pages, unwinding on ENOMEM the kernel way."""
        got: list[mm.Page] = []
        try:
            for _ in range(n):
                got.append(mm.alloc_page(GFP_KERNEL, "bo"))
        except ds.ENOMEM:
            for p in got:
                mm.free_page(p)
            raise
        return got

    def scenario(k: ds.Kernel) -> None:
        alloc = mm.init_memory(64, fail_nth=3)
        try:
            driver_alloc(4)
        except ds.ENOMEM as e:
            out["err"] = str(e)
        out["free"] = alloc.nr_free
        pages = driver_alloc(4)  # the 4th..7th allocations succeed
        out["ok"] = len(pages)
        out["injected"] = alloc.stats.injected

    ex = run_first(scenario)
    assert ex.findings == []
    assert out == {"err": "alloc_page(GFP_KERNEL): injected failure (allocation #3)", "free": 64, "ok": 4,
                   "injected": 1}


def test_probabilistic_failures_follow_the_seed() -> None:
    def pattern(seed: int) -> list[bool]:
        res: list[bool] = []

        def scenario(k: ds.Kernel) -> None:
            mm.init_memory(256, fail_probability=0.3)
            for _ in range(40):
                try:
                    mm.alloc_page(GFP_KERNEL, "x")
                    res.append(True)
                except ds.ENOMEM:
                    res.append(False)

        ds.Kernel(seed=seed).run(scenario)
        return res

    a, b, c = pattern(5), pattern(5), pattern(6)
    assert a == b
    assert a != c
    assert 0 < a.count(False) < 40


def test_gfp_atomic_under_spinlock_is_fine_gfp_kernel_is_not() -> None:
    def scenario(k: ds.Kernel) -> None:
        lock = ds.SpinLock("driver_lock")
        with lock:
            mm.alloc_page(GFP_ATOMIC, "irq")
        with lock:
            mm.alloc_page(GFP_KERNEL, "bug")

    ex = run_first(scenario)
    assert ex.kinds == ["sleep-in-atomic"]
    f = ex.findings[0]
    assert f.details["call"] == "might_alloc"
    assert [a["name"] for a in f.details["atomic"]] == ["driver_lock"]


def test_noio_reclaim_and_gfp_noio_flag() -> None:
    log: list[Any] = []

    def scenario(k: ds.Kernel) -> None:
        mm.init_memory(16, low=4, min=1)
        cache = Cache()
        CacheShrinker(cache, k, log).register()
        for _ in range(12):
            cache.pages.append(mm.alloc_page(GFP_NOWAIT, cache))
        mm.alloc_page(GFP_NOIO, "io")

    ex = run_first(scenario)
    assert ex.findings == []
    assert log == [("scan", 5, 1, False, False)]


def test_empty_and_stopping_shrinkers_are_not_scanned_further() -> None:
    log: list[Any] = []

    class Empty(mm.Shrinker):
        def count_objects(self, sc: mm.ShrinkControl) -> int:
            log.append("count-empty")
            return mm.SHRINK_EMPTY

        def scan_objects(self, sc: mm.ShrinkControl) -> int:
            log.append("scan-empty")
            return 0

    def scenario(k: ds.Kernel) -> None:
        mm.init_memory(8, low=2, min=0)
        cache = Cache()
        Empty("empty").register()
        s = CacheShrinker(cache, k, log)
        s.batch = 1
        s.register()
        for _ in range(6):
            cache.pages.append(mm.alloc_page(GFP_NOWAIT, cache))
        mm.alloc_page(GFP_KERNEL, "x")  # 2 free == low: reclaim 3 frames, one per batch
        assert s.nr_scan_calls == 3 and s.nr_freed == 3

    ex = run_first(scenario)
    assert ex.findings == []
    assert log == ["count-empty", ("scan", 1, 1, True, True), ("scan", 1, 1, True, True), ("scan", 1, 1, True, True)]


def test_memory_size_from_config_options_and_init_once() -> None:
    out: dict[str, Any] = {}

    def scenario(k: ds.Kernel) -> None:
        a = mm.page_allocator()
        out["size"] = (a.nr_pages, a.low, a.min, a.nr_free)
        try:
            mm.init_memory(16)
        except ds.UsageError as e:
            out["twice"] = str(e)

    ex = ds.Kernel(strategy=ds.FirstStrategy(), options={"mm": {"nr_pages": 128, "low": 8}}).run(scenario)
    assert ex.findings == []
    assert out["size"] == (128, 8, 4, 128)
    assert out["twice"].startswith("init_memory() called twice")


def test_noreclaim_scope_never_enters_direct_reclaim() -> None:
    """memalloc_noreclaim_save (PF_MEMALLOC): under pressure the allocation takes a reserve
    frame instead of running the shrinkers; after the restore, reclaim runs again."""
    from dmabufsim.kernel.gfp import PF_MEMALLOC, memalloc_noreclaim_restore, memalloc_noreclaim_save

    log: list[Any] = []
    out: dict[str, Any] = {}

    def scenario(k: ds.Kernel) -> None:
        alloc = mm.init_memory(32, low=4, min=2)
        cache = Cache()
        CacheShrinker(cache, k, log).register()
        for _ in range(28):  # 4 free == low
            cache.pages.append(mm.alloc_page(GFP_KERNEL, cache))
        flags = memalloc_noreclaim_save()
        inner = memalloc_noreclaim_save()
        out["flags"] = (flags, inner)
        for _ in range(4):  # down to 0 free: the min reserve too, no reclaim
            mm.alloc_page(GFP_KERNEL, "user")
        memalloc_noreclaim_restore(inner)
        memalloc_noreclaim_restore(flags)
        out["scoped"] = (alloc.nr_free, alloc.stats.direct_reclaims, list(log), k.current.in_reclaim)
        mm.alloc_page(GFP_KERNEL, "user")  # outside: direct reclaim
        out["after"] = alloc.stats.direct_reclaims

    ex = run_first(scenario)
    assert ex.findings == []
    assert out["flags"] == (0, PF_MEMALLOC)
    assert out["scoped"] == (0, 0, [], 0)
    assert out["after"] == 1
    assert log == [("scan", 9, 1, True, True)]


def test_noreclaim_scope_still_sleeps_in_atomic_context() -> None:
    """PF_MEMALLOC changes reclaim, not the flags: GFP_KERNEL under a spinlock is still reported."""
    from dmabufsim.kernel.gfp import memalloc_noreclaim

    def scenario(k: ds.Kernel) -> None:
        mm.init_memory(16, low=2, min=1)
        s = ds.SpinLock("s")
        with memalloc_noreclaim(), s:
            mm.alloc_page(GFP_KERNEL, "user")

    ex = run_first(scenario)
    assert [(f.kind, f.details["atomic"][-1]["name"]) for f in ex.findings] == [("sleep-in-atomic", "s")]
