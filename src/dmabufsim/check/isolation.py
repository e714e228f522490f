"""The isolation checker: every DMA access resolved to a frame is judged.

Models what KASAN, the IOMMU's fault reporting and ``CONFIG_DEBUG_VM``'s
page checks would together tell a driver developer: that a device touched
memory it had no business touching, or that the kernel let go of a page a
device could still reach (Daniel's side of the seed thread: "a broken
device can't access memory it shouldn't", "set_page_dirty /
mark_page_accessed only after all the mappings are really gone").

It is installed per execution (``register_extension("isolation", ...)``) as
``k.ext["isolation"]``; the device DMA path calls :meth:`check` directly and
the mm calls :meth:`page_event`. ``Config.options["isolation"] = False``
turns it off (the benchmark baseline); ``options["leak_check"] = False``
turns off the teardown leak check only.

Rules:

* R1 (``dma-freed-page``, error): an access reaches a free frame.
* R2 (``dma-foreign-page``, error): an access reaches a frame now owned by
  someone other than the owner it was mapped for (freed and reused, or the
  owner's copy-on-write left it to another process): kernel integrity is
  broken (claims C9, C11, C13). A frame freed and reused by the *same*
  kernel object is also this; reused by the same process it is R3.
  A mapping made for a given address space (``iommu`` R6, ``mm=``) is
  for that process: the frame counts as its while it maps the frame --
  copy-on-write shared after ``fork`` and owned by the other process, or
  left to it by the other's copy-on-write break -- so an access is foreign
  once the frame is owned by someone else and that process no longer maps
  it (cause ``cow-owner-moved``, whichever process broke copy-on-write:
  the frame is the other process's alone), or once the frame was reused by
  another owner.
* R3 (``user-incoherence``, info): an access reaches a frame its process
  still owns but no longer maps at the user address the mapping was made
  for (unmapped, copy-on-write moved the address to a new page, reused at
  another address), or writes a frame the process maps read-only or shares
  copy-on-write: userspace sees incoherent memory, the kernel is intact
  (claim C12).
* R4 (``dirty-while-mapped``, error, claim C14): a frame is dirtied,
  unpinned, released (``put_page``) or freed while an IOMMU entry
  (including a stale IOTLB entry) can still reach it. Unpinning and
  releasing count when they drop the frame's last pin / last
  get_user_pages reference: a spare reference (a second lookup of the same
  pages, discarded) can go while another still holds the frame.
* R5 (``stale-mapping``, warning): at the end, an IOMMU entry (or stale
  IOTLB entry) still points at a frame that was freed or reused since it
  was mapped (claims C3, C15).
* R6 (``leak``, warning): at the end (when the execution completed): pins
  not released, get_user_pages references not put, frames of exited
  processes still allocated, IOMMU entries and GPU PTEs not torn down, jobs
  whose fences never signalled, locks held by threads that did not exit.
* Each finding is reported once per (kind, device, owner, cause); the
  checker's :meth:`statistics` counts every event.
"""

from __future__ import annotations

from typing import Any

from ..device.device import Device, Job
from ..device.iommu import STALE, DmaMapping
from ..kernel.runtime import Kernel, register_extension
from ..kernel.thread import ThreadState
from ..mm.memory import PROT_WRITE, MmStruct
from ..mm.page import PAGE_SHIFT, Page, owner_name, page_allocator


class IsolationChecker:
    """Per-execution isolation state (see the module docstring for the rules)."""

    __slots__ = ("counts", "k", "leak_check", "nr_checked")

    def __init__(self, k: Kernel, *, leak_check: bool = True) -> None:
        self.k = k
        self.leak_check = leak_check
        #: DMA accesses checked.
        self.nr_checked = 0
        #: Events by finding kind (every occurrence, not only the first report).
        self.counts: dict[str, int] = {}

    def statistics(self) -> dict[str, int]:
        d = dict(self.counts)
        d["checked"] = self.nr_checked
        return d

    # ------------------------------------------------------------------ the DMA path (hot)

    def check(self, rec: DmaMapping, write: bool) -> bool:
        """The fast path of one access through IOMMU entry ``rec``: True when nothing is wrong.

        False means :meth:`judge` must look closer (and report). Never blocks or raises.
        """
        self.nr_checked += 1
        page = rec.page
        owner = page.owner
        if rec.mm is not None:
            # R2: a mapping for a given address space is fine while that mm maps the frame there.
            ptes = rec.user_ptes
            if owner is not None and page.gen == rec.gen and ptes is not None:
                pte = ptes.get(rec.user_vpn)
                if pte is not None and pte.page is page and (pte.writable or not write):
                    return True
            return False
        if owner is rec.owner and owner is not None and page.gen == rec.gen:
            ptes = rec.user_ptes
            if ptes is None:
                return True
            pte = ptes.get(rec.user_vpn)
            if pte is not None and pte.page is page and (pte.writable or not write):
                return True
        return False

    def judge(self, dev: Device, rec: DmaMapping, write: bool, va: int, iova: int, job: Job | None,
              stray: bool) -> None:
        """The slow path: decide R1-R3 for an access :meth:`check` did not clear, and report."""
        self._slow(dev, rec, rec.page, write, va, iova, job, stray)

    def _slow(self, dev: Device, rec: DmaMapping, page: Page, write: bool, va: int, iova: int,
              job: Job | None, stray: bool) -> None:
        if page.owner is None:
            self._report("dma-freed-page", f"BUG: DMA {'write' if write else 'read'} to freed page",
                         "isolation R1: a device reached a free frame", dev, rec, page, write, va, iova, job,
                         stray, "freed")
            return
        if rec.mm is not None and page.owner is not rec.mm \
                and (page.gen != rec.gen or not any(m is rec.mm for m, _ in page.rmap)):
            # R2: mapped for rec.mm, and the frame is no longer that process's.
            cause = "reused" if page.gen != rec.gen else "cow-owner-moved"
            self._report("dma-foreign-page", f"BUG: DMA {'write' if write else 'read'} to a page of another owner",
                         "isolation R2: a device reached a frame owned by someone else", dev, rec, page, write, va,
                         iova, job, stray, cause)
            return
        if rec.mm is None and page.owner is not rec.owner:
            cause = "reused" if page.gen != rec.gen else "cow-owner-moved"
            self._report("dma-foreign-page", f"BUG: DMA {'write' if write else 'read'} to a page of another owner",
                         "isolation R2: a device reached a frame owned by someone else", dev, rec, page, write, va,
                         iova, job, stray, cause)
            return
        if page.gen != rec.gen:
            if not isinstance(page.owner, MmStruct):  # (rec.mm set: the frame is rec.mm's, an MmStruct)
                self._report("dma-foreign-page",
                             f"BUG: DMA {'write' if write else 'read'} to a freed and reallocated page",
                             "isolation R2: a device reached a frame freed and reused since it was mapped",
                             dev, rec, page, write, va, iova, job, stray, "reused-same-owner")
                return
            cause = "reused by the same process"
        else:
            um = rec.user_mm
            assert um is not None or rec.mm is not None
            pte = um.ptes.get(rec.user_va >> PAGE_SHIFT) if um is not None else None
            if pte is None or pte.page is not page:
                cause = "no longer mapped at the address" if pte is None else "the address maps another page now"
            else:
                assert um is not None
                vma = um.find_vma(rec.user_va)
                if vma is None or not vma.prot & PROT_WRITE:
                    cause = "the page is mapped read-only"
                elif len(page.rmap) > 1:
                    cause = "the page is shared copy-on-write"
                else:
                    return  # a private page not yet write-faulted: the write is coherent
        self._report("user-incoherence", "userspace-visible incoherence: device access to a page the process "
                     "no longer maps that way", "isolation R3: userspace racing itself (allowed)", dev, rec, page,
                     write, va, iova, job, stray, cause)

    def check_unmapped(self, dev: Device, page: Page, write: bool, va: int, iova: int, job: Job | None,
                       stray: bool) -> None:
        """An access through a passthrough domain at an address no mapping covers (iommu R4)."""
        self.nr_checked += 1
        if page.owner is None:
            kind, title, rule = ("dma-freed-page", f"BUG: DMA {'write' if write else 'read'} to freed page",
                                 "isolation R1: a device reached a free frame (passthrough: nothing isolates)")
        else:
            kind, title, rule = ("dma-foreign-page",
                                 f"BUG: DMA {'write' if write else 'read'} to a page never mapped for the device",
                                 "isolation R2: passthrough lets a device reach any frame")
        self._report(kind, title, rule, dev, None, page, write, va, iova, job, stray, "passthrough-unmapped")

    def _report(self, kind: str, title: str, rule: str, dev: Device, rec: DmaMapping | None, page: Page,
                write: bool, va: int, iova: int, job: Job | None, stray: bool, cause: str) -> None:
        self.counts[kind] = self.counts.get(kind, 0) + 1
        # The owner the mapping was made for: the address space the driver named (iommu R6), else the frame's.
        owner_at_map = owner_name(rec.owner if rec.mm is None else rec.mm) if rec is not None else None
        details: dict[str, Any] = {
            "device": dev.name,
            "access": "write" if write else "read",
            "pfn": page.pfn,
            "owner": owner_name(page.owner),
            "owner_at_map": owner_at_map,
            "gen_at_map": rec.gen if rec is not None else None,
            "gen_now": page.gen,
            "va": f"{va:#x}",
            "iova": f"{iova:#x}",
            "cause": cause,
            "job": job.name if job is not None else None,
            "stray": stray,
        }
        if rec is not None and rec.user_mm is not None:
            details["user_mm"] = rec.user_mm.name
            details["user_va"] = f"{rec.user_va:#x}"
        text = (f"{title}\n  device {dev.name} {details['access']} va {va:#x} -> iova {iova:#x} -> pfn {page.pfn}\n"
                f"  mapped for {owner_at_map} at generation {details['gen_at_map']}; "
                f"now {details['owner']} at generation {page.gen} ({cause})")
        self.k.report(kind, title, details=details, rule=rule, text=text,
                      signature=f"{kind}:{dev.name}:{owner_at_map}:{cause}:{stray}")

    # ------------------------------------------------------------------ mm events (R4)

    def page_event(self, page: Page, event: str) -> None:
        """``page`` is dirtied/unpinned/released/freed while ``page.dev_maps`` is non-empty (R4)."""
        maps = page.dev_maps
        if not maps:
            return
        self.counts["dirty-while-mapped"] = self.counts.get("dirty-while-mapped", 0) + 1
        rec = maps[0]
        devs = sorted({r.domain.name for r in maps})
        self.k.report(
            "dirty-while-mapped",
            f"BUG: page {event} while a device can still reach it",
            details={
                "event": event,
                "pfn": page.pfn,
                "owner": owner_name(page.owner),
                "gen": page.gen,
                "devices": devs,
                "mappings": [r.describe() for r in maps],
            },
            rule="isolation R4: dirty/unpin/release/free a page only after every device mapping is gone (C14)",
            signature=f"dirty-while-mapped:{event}:{','.join(devs)}:{owner_name(rec.owner)}",
            text=(f"BUG: page pfn {page.pfn} ({owner_name(page.owner)}) {event} while mapped by "
                  f"{', '.join(devs)} at iova {rec.iova:#x}"
                  f"{' (stale IOTLB entry)' if rec.state == STALE else ''}"),
        )

    # ------------------------------------------------------------------ end of execution (R5, R6)

    def at_exit(self) -> None:
        k = self.k
        devices: list[Device] = k.ext.get("device.devices", [])
        for dev in devices:
            for rec in dev.domain.live_mappings():
                page = rec.page
                if page.owner is None or page.gen != rec.gen:
                    self.counts["stale-mapping"] = self.counts.get("stale-mapping", 0) + 1
                    k.report(
                        "stale-mapping",
                        "WARNING: IOMMU mapping to a freed page still present",
                        details=dict(rec.describe(), owner_now=owner_name(page.owner), gen_now=page.gen,
                                     owner_at_map=owner_name(rec.owner)),
                        rule="isolation R5: no device mapping may outlive its page",
                        signature=f"stale-mapping:{dev.name}:{owner_name(rec.owner)}",
                        threads=(),
                    )
        if self.leak_check:
            self._leaks(devices)

    def _leak(self, what: str, details: dict[str, Any], sig: str) -> None:
        self.counts["leak"] = self.counts.get("leak", 0) + 1
        self.k.report("leak", f"leak: {what}", details=details, rule="isolation R6: teardown leaves nothing behind",
                      signature=f"leak:{sig}", threads=())

    @staticmethod
    def _pages(pages: list[Page]) -> dict[str, Any]:
        return {"pfns": [p.pfn for p in pages[:16]], "owners": sorted({owner_name(p.owner) for p in pages})}

    def _leaks(self, devices: list[Device]) -> None:
        k = self.k
        alloc = page_allocator(k) if "mm.alloc" in k.ext else None
        if alloc is not None:
            pinned = [p for p in alloc.frames if p.pincount]
            if pinned:
                self._leak(f"{len(pinned)} page(s) still pinned",
                           self._pages(pinned),
                           "pins")
            gup = [p for p in alloc.frames if p.gup_refs and p.owner is not None]
            if gup:
                self._leak(f"{len(gup)} get_user_pages reference(s) never put",
                           self._pages(gup),
                           "gup-refs")
            orphans = [p for p in alloc.frames if isinstance(p.owner, MmStruct) and p.owner.dead]
            if orphans:
                self._leak(f"{len(orphans)} page(s) of exited processes still allocated",
                           self._pages(orphans),
                           "orphans")
        for dev in devices:
            live = [r for r in dev.domain.live_mappings() if r.page.owner is not None and r.page.gen == r.gen]
            if live:
                self._leak(f"{len(live)} IOMMU mapping(s) of {dev.name} not torn down",
                           {"device": dev.name, "iovas": [f"{r.iova:#x}" for r in live[:16]]}, f"iommu:{dev.name}")
            if dev.vm is not None and dev.vm.ptes:
                self._leak(f"{len(dev.vm.ptes)} GPU PTE(s) of {dev.vm.name} not zapped",
                           {"device": dev.name, "vas": [f"{v << PAGE_SHIFT:#x}" for v in sorted(dev.vm.ptes)[:16]]},
                           f"gpuvm:{dev.name}")
            unfinished = [j.name for e in dev.engines.values() for j in
                          ([e.running] if e.running is not None else []) + list(e.queue)]
            if unfinished:
                self._leak(f"{len(unfinished)} job(s) of {dev.name} never completed (fences never signalled)",
                           {"device": dev.name, "jobs": unfinished[:16]}, f"jobs:{dev.name}")
        exited = ThreadState.EXITED  # an Enum member lookup costs ~10x a local's
        for t in k.threads:
            if t.state is not exited and t.held:
                self._leak(f"{t.name} ended the execution holding locks",
                           {"thread": t.name, "locks": [hl.map.name for hl in t.held]}, f"locks:{t.name}")


def _setup(k: Kernel) -> None:
    if k.config.options.get("isolation", True) is False:
        return
    chk = IsolationChecker(k, leak_check=bool(k.config.options.get("leak_check", True)))
    k.ext["isolation"] = chk
    k.at_exit.append(chk.at_exit)


def _reset(k: Kernel, chk: IsolationChecker) -> None:
    """A reused Kernel's next execution (runtime R13; the same options): nothing checked or counted."""
    chk.nr_checked = 0
    chk.counts = {}


register_extension("isolation", _setup, _reset)


def isolation_checker(k: Kernel) -> IsolationChecker | None:
    """The execution's checker (None when turned off)."""
    c: IsolationChecker | None = k.ext.get("isolation")
    return c
