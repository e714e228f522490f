"""page R7: a frame's contents are declared apart from its bookkeeping.

What each path declares (a CPU store, a DMA, ``iommu_map``, a free, the reuse), the undeclared-access
checker catching a store declared on the bookkeeping and a bookkeeping write declared on the
contents, and the audits: on random small programs of CPU loads and stores, IOMMU map and unmap, DMA
reads and writes, frees and reallocations of two frames, optimal and classic DPOR reach exactly the
terminal states (the frames' contents and owners, what each thread read) and the findings
(``dma-freed-page``, ``dma-foreign-page``, ``iommu-fault``, ``stale-mapping``, a bad page) of DFS.
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
from dmabufsim.kernel.trace import refcount_oid
from dmabufsim.mm import page as page_mod
from dmabufsim.mm.memory import Process
from dmabufsim.mm.page import PAGE_SIZE, Page, alloc_page, contents_oid, free_page, init_memory

NO_LOCKDEP = {"lockdep": False}
#: An object no model path declares: the scheduling point of a thread's CPU access (the access
#: itself declares the frame's contents through ``Page.read`` / ``Page.write``).
VAR = 40_000


class Owner:
    """A kernel object owning frames (a buffer object)."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name


def _decl(ex: ds.Execution, op: str) -> list[tuple[int, bool]]:
    return [(e.obj, e.write) for e in ex.events or [] if e.op == op]


def test_each_path_declares_the_part_of_the_frame_it_touches() -> None:
    got: dict[str, Any] = {}

    def sc(k: ds.Kernel) -> None:
        init_memory(8)
        dev = Device("gpu0", gpuvm=False)
        proc = Process("p")
        addr = proc.mmap(PAGE_SIZE)
        proc.write(addr, "cpu")  # faults the page in
        page = proc.mm.lookup(addr)
        assert page is not None
        got["user"] = page.oid
        proc.write(addr, "again")  # the PTE is there: the store alone
        iova = dev.domain.dma_map_page(page)
        dev.dma_write(iova, "gpu")
        got["read"] = proc.read(addr)
        dev.domain.dma_unmap_page(iova)
        kpage = alloc_page(GFP_KERNEL, Owner("bo"))
        got["kernel"] = kpage.oid
        free_page(kpage)
        again = alloc_page(GFP_KERNEL, Owner("bo2"))  # the frame just freed (last-freed-first)
        got["reused"] = again is kpage
        proc.exit()

    ex = ds.Kernel(strategy=ds.FirstStrategy(), record_trace=True).run(sc)
    assert ex.findings == []
    assert got["read"] == "gpu" and got["reused"] is True
    u, kp = got["user"], got["kernel"]
    # CPU stores and loads and the DMA touch the contents only (the user store's scheduling point
    # is its address space's): never the frame's bookkeeping.
    assert _decl(ex, "page_write") == [(contents_oid(u), True)] * 3
    assert _decl(ex, "page_read") == [(contents_oid(u), False)]
    # The DMA's isolation check reads the bookkeeping it judges by.
    assert _decl(ex, "dma_isolation_check") == [(u, False)]
    # iommu_map and iommu_unmap: the IOMMU's table and the frame's list of device mappings.
    assert [d for d in _decl(ex, "iommu_map") if d[0] in (u, contents_oid(u))] == [(u, True)]
    assert [d for d in _decl(ex, "iommu_unmap") if d[0] in (u, contents_oid(u))] == [(u, True)]
    # The free writes the bookkeeping and the contents; so does the reuse, with its count (R6).
    assert (kp, True) in _decl(ex, "free_pages_prepare") and (contents_oid(kp), True) in _decl(
        ex, "free_pages_prepare")
    assert _decl(ex, "alloc_page")[-3:] == [(refcount_oid(kp), True), (kp, True), (contents_oid(kp), True)]


# ---------------------------------------------------------------- the undeclared-access checker sees the split


def _planted(store_declares_bookkeeping: bool) -> Any:
    """Two threads on one frame. ``store_declares_bookkeeping``: a step stores into the frame's
    contents declaring only its bookkeeping, racing a CPU load; otherwise a step rewrites the frame's
    owner declaring only its contents, racing an ``iommu_map`` of the frame."""

    def scenario(k: ds.Kernel) -> None:
        init_memory(8)
        dev = Device("gpu0", gpuvm=False)
        page = alloc_page(GFP_KERNEL, Owner("bo"))

        def bad_store() -> None:
            k.point("planted_store", page.oid, True)  # the bookkeeping, not the contents
            page.data = {0: "planted"}

        def bad_owner() -> None:
            k.point("planted_owner", contents_oid(page.oid), True)  # the contents, not the bookkeeping
            page.owner = Owner("thief")

        def cpu_load() -> None:
            k.point("cpu", VAR, False)
            page.read(0)

        def mapper() -> None:
            dev.domain.dma_map_page(page)

        if store_declares_bookkeeping:
            k.spawn(bad_store, name="bad")
            k.spawn(cpu_load, name="other")
        else:
            k.spawn(bad_owner, name="bad")
            k.spawn(mapper, name="other")

    return scenario


@pytest.mark.parametrize(("planted", "attribute"), [(True, "data"), (False, "owner")])
def test_the_access_checker_catches_a_store_declared_on_the_wrong_part(planted: bool, attribute: str) -> None:
    seen = set()
    for seed in range(6):
        ex = ds.Kernel(seed=seed, check_accesses=True).run(_planted(planted))
        found = ex.by_kind("undeclared-access")
        assert found, [f.title for f in ex.findings]
        # one finding per line of the other path that touches the attribute (iommu_map reads the owner thrice)
        assert {(f.details["object"], f.details["attribute"]) for f in found} == {(f"Page#{6}", attribute)}
        seen.update(f.details["other_thread"] for f in found)
    assert seen == {"bad", "other"}  # caught whichever of the two ran first


def test_correct_declarations_are_not_reported() -> None:
    def scenario(k: ds.Kernel) -> None:
        init_memory(8)
        dev = Device("gpu0", gpuvm=False)
        page = alloc_page(GFP_KERNEL, Owner("bo"))
        iova = dev.domain.dma_map_page(page)

        def cpu() -> None:
            k.point("cpu", VAR, False)
            page.write(0, "cpu")

        def gpu() -> None:
            dev.dma_write(iova, "gpu")
            dev.domain.dma_unmap_page(iova)
            free_page(page)

        def mapper() -> None:
            dev.domain.map(IOVA_BASE + 8 * PAGE_SIZE, page)

        k.spawn(cpu, name="cpu")
        k.spawn(gpu, name="gpu")
        k.spawn(mapper, name="mapper")

    for seed in range(10):
        ex = ds.Kernel(seed=seed, check_accesses=True).run(scenario)
        assert ex.by_kind("undeclared-access") == []


# ---------------------------------------------------------------- the audits against DFS

#: One thread's program over frames 0 and 1 (IOVA i maps frame i):
#: ("store", f) / ("load", f): a CPU store / load; ("map", f) / ("unmap", f): iommu_map / iommu_unmap;
#: ("dmaw", f) / ("dmar", f): a device write / read at IOVA f; ("free", f): the owner's free of frame f;
#: ("alloc",): a new frame (a freed one is reused), written at once.
op = st.one_of(
    st.tuples(st.sampled_from(["store", "load", "map", "unmap", "dmaw", "dmar", "free"]), st.integers(0, 1)),
    st.tuples(st.just("alloc")),
)
program = st.lists(op, min_size=1, max_size=3)


def build(programs: list[list[tuple[Any, ...]]]) -> Any:
    def scenario(k: ds.Kernel) -> None:
        init_memory(8)
        dev = Device("gpu0", gpuvm=False)
        frames = [alloc_page(GFP_KERNEL, Owner(f"bo{i}")) for i in range(2)]
        alloc = frames[0].alloc
        seen: list[tuple[Any, ...]] = []

        def run(tid: int, prog: list[tuple[Any, ...]]) -> None:
            got: list[object] = []
            for n, o in enumerate(prog):
                what = o[0]
                value = f"t{tid}.{n}"
                if what == "store":
                    k.point("cpu", VAR, False)
                    frames[o[1]].write(0, value)
                elif what == "load":
                    k.point("cpu", VAR, False)
                    got.append(frames[o[1]].read(0))
                elif what == "map":
                    try:
                        dev.domain.map(IOVA_BASE + o[1] * PAGE_SIZE, frames[o[1]])
                    except EBUSY:
                        got.append("busy")
                elif what == "unmap":
                    got.append(dev.domain.unmap(IOVA_BASE + o[1] * PAGE_SIZE))
                elif what == "dmaw":
                    dev.dma_write(IOVA_BASE + o[1] * PAGE_SIZE, value)
                elif what == "dmar":
                    got.append(dev.dma_read(IOVA_BASE + o[1] * PAGE_SIZE))
                elif what == "free":
                    free_page(frames[o[1]])
                else:
                    p = alloc_page(GFP_KERNEL, Owner(f"new{tid}"))
                    p.write(0, value)
                    got.append(p.pfn)
            seen.append((tid, tuple(got)))

        for i, p in enumerate(programs):
            k.spawn(run, i, p, name=f"t{i}")

        def state() -> tuple[Any, ...]:
            pages: list[Page] = alloc.frames
            return (tuple((p.pfn, p.gen, page_mod.owner_name(p.owner), p.read(0) if p.data else 0) for p in pages),
                    tuple(sorted(seen)))

        k.ext["explore.state"] = state

    return scenario


_DMA_AFTER_FREE = [[("map", 0), ("dmaw", 0)], [("free", 0), ("alloc",)]]
_STORE_AND_FREE = [[("store", 0)], [("free", 0)]]
_STORE_AND_MAP = [[("store", 0), ("dmar", 0)], [("map", 0), ("unmap", 0)]]


@pytest.mark.parametrize("por", ["odpor", "dpor"])
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(programs=st.lists(program, min_size=2, max_size=2))
@example(programs=_DMA_AFTER_FREE)
@example(programs=_STORE_AND_FREE)
@example(programs=_STORE_AND_MAP)
@example(programs=[[("map", 0), ("dmaw", 0)], [("free", 0), ("alloc",)], [("store", 0)]])
def test_dpor_matches_dfs_on_frames_under_dma(por: str, programs: list[list[tuple[Any, ...]]]) -> None:
    res = audit(build(programs), budget=20_000, kernel_options=NO_LOCKDEP, por=por)
    assert res.exhausted, res.summary()  # two threads of at most three operations: at most a few hundred
    assert res.ok, res.summary()


@pytest.mark.slow
@pytest.mark.parametrize("por", ["odpor", "dpor"])
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(programs=st.lists(program, min_size=3, max_size=3))
def test_dpor_matches_dfs_on_frames_under_dma_three_threads(por: str, programs: list[list[tuple[Any, ...]]]) -> None:
    res = audit(build(programs), budget=20_000, kernel_options=NO_LOCKDEP, por=por)
    if res.exhausted:  # DFS of three threads may exceed the budget: then there is nothing to compare
        assert res.ok, res.summary()


def test_the_audit_sees_dma_to_a_freed_page_and_to_its_reuse() -> None:
    res = audit(build(_DMA_AFTER_FREE), budget=20_000, kernel_options=NO_LOCKDEP, por="odpor")
    assert res.exhausted and res.ok, res.summary()
    kinds = {sig.split(":")[0] for _, sigs, _ in res.dpor_states for sig in sigs}
    # Before the free: clean; between the free and the reuse: a free frame; after: another owner's.
    assert {"dma-freed-page", "dma-foreign-page"} <= kinds


def test_a_free_that_does_not_declare_the_contents_is_caught_by_the_audit(monkeypatch: pytest.MonkeyPatch) -> None:
    """The planted bug: a free declaring only the bookkeeping. A CPU store and the free then look
    independent, and the one order in which the store lands before the free clears it is lost."""

    def put_ref_without_contents(self: page_mod.PageAllocator, page: Page) -> None:
        k = self.k
        k.event("put_page", refcount_oid(page.oid), True)
        page.refcount -= 1
        if page.refcount == 0:
            k.event("free_pages_prepare", page.oid, True)
            self._free_page(page)

    res = audit(build(_STORE_AND_FREE), budget=20_000, kernel_options=NO_LOCKDEP, por="odpor")
    assert res.exhausted and res.ok, res.summary()
    monkeypatch.setattr(page_mod.PageAllocator, "put_ref", put_ref_without_contents)
    bad = audit(build(_STORE_AND_FREE), budget=20_000, kernel_options=NO_LOCKDEP, por="odpor")
    assert bad.exhausted and not bad.ok
    assert len(bad.dpor_states) < len(bad.dfs_states)


def test_a_reuse_that_declares_only_the_count_is_caught_by_the_audit(monkeypatch: pytest.MonkeyPatch) -> None:
    """The planted bug: the allocation of a reused frame declaring only its count (R6), not its owner,
    generation and contents (R7). A DMA through the stale entry and the reuse then look independent,
    and the access that meets the new owner (``dma-foreign-page``) is lost."""

    def take_declaring_the_count(self: page_mod.PageAllocator, owner: object) -> Page:
        if self._free:
            page = self._free.pop()
            self.k.event("alloc_page", refcount_oid(page.oid), True)
        else:
            page = Page(self, self._never_used, self.k.new_oid())
            self._never_used += 1
            self.frames.append(page)
        page.owner = owner
        page.refcount = 1
        page.gen += 1
        return page

    res = audit(build(_DMA_AFTER_FREE), budget=20_000, kernel_options=NO_LOCKDEP, por="odpor")
    assert res.exhausted and res.ok, res.summary()
    monkeypatch.setattr(page_mod.PageAllocator, "_take", take_declaring_the_count)
    bad = audit(build(_DMA_AFTER_FREE), budget=20_000, kernel_options=NO_LOCKDEP, por="odpor")
    assert bad.exhausted and not bad.ok
    assert len(bad.dpor_states) < len(bad.dfs_states)
