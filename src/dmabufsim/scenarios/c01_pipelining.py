"""Claim C1 (Christian): full pipelining of moves of a shared buffer.

  "the exporter can say I need to move the buffer for some operation. Then
  let the move operation wait for all existing fences in the reservation
  object and install the fence of the move operation as exclusive fence."

The experiment: an amdgpu-like exporter (:mod:`~dmabufsim.drivers.amdgpu_exporter`)
shares a buffer holding ``"frame"``, placed in GTT (where importers
without peer-to-peer map it), with two dynamic importers on two other
devices (:class:`~dmabufsim.drivers.dma_buf_importers.DynamicImporter`).
Each importer reads the whole buffer with a GPU job while the exporter's
CPU thread moves it to VRAM; an importer access after the move must re-map
(``move_notify``) -- which moves the buffer back to GTT, a second
pipelined move -- and its job must wait for the moves' KERNEL fences as
dependencies.

The configuration (``IMPORTERS``, ``READS``, ``PAGES``, ``START``,
``MOVES``) is the smallest that still shows every sibling's bug (catalog
R8): a stale read needs one importer's job in flight when the move is
queued (the copy waits for it) and another importer's job after the move
that does not wait for the copy -- two importers, one read each, one
move; one page is enough for every check. Optimal DPOR exhausts it
(4,752 Mazurkiewicz traces, nothing dropped): ``pipelined`` is proved
since the waiters of one fence link their nodes in any order
(``dma_fence`` R14; ``proofs`` tells the rounds before).

The scenario itself checks the claim's three promises and reports an
``assertion`` finding when one is broken:

* the exporting CPU thread never blocks on a fence (the move calls take no
  virtual time and the TTM device counts no CPU fence wait);
* every importer read returns the buffer's contents (a read of a page the
  copy has not filled yet returns 0: a stale read);
* when everything is idle, every ghost has been released.

The isolation checker adds the rest: a DMA to a freed page (old pages freed
before the move fence) or a page freed while a device still maps it.

Designs:

* ``pipelined`` (the claim): clean.
* ``importer-ignores-fences``: the same, but the importers do not wait for
  the KERNEL fence (the dma-buf rule is theirs to keep, dma-buf R6): their
  jobs read the new pages before the copy wrote them -- the scenario's
  stale-read ``assertion``. Shows the checks have teeth.
* ``non-pipelined``: the memory manager waits on the CPU instead
  (ttm R5): correct data, but the exporter's thread blocks -- the claim's
  first promise does not hold (``assertion``), which is exactly what
  pipelining buys.
"""

from __future__ import annotations

from typing import Any

from ..device.ttm import MemType
from ..drivers.amdgpu_exporter import AmdgpuExporter
from ..drivers.dma_buf_importers import DynamicImporter
from ..kernel.runtime import Kernel
from .catalog import Verdict

#: What the buffer holds; every importer read must return it.
CONTENTS = "frame"
#: Importers, read jobs per importer, and their length.
IMPORTERS = 2
READS = 1
READ_NS = 20_000
#: Pages of the shared buffer, and where it is created.
PAGES = 1
START: tuple[MemType, ...] = (MemType.TT,)
#: The exporter's moves, in order.
MOVES: tuple[tuple[MemType, ...], ...] = ((MemType.VRAM,),)


def _fail(k: Kernel, tag: str, what: str, **details: Any) -> None:
    """Report a broken C1 promise as an ``assertion`` with signature ``c1:<tag>`` (rows name the tag)."""
    k.report(
        "assertion",
        f"claim C1 violated: {what}",
        details=details,
        rule="C1: pipelined moves never block the exporter and never expose stale or freed memory",
        signature=f"c1:{tag}",
    )


def _importer(k: Kernel, imp: DynamicImporter, att: Any) -> None:
    """Read ``READS`` times, one job in flight at a time; the teardown waits for the last (importer R4)."""
    fence = None
    for _ in range(READS):
        if fence is not None:
            fence.wait()
        fence = imp.access(att, write=False, duration_ns=READ_NS)


def _exporter(k: Kernel, drv: AmdgpuExporter, bo: Any, blocked: list[int]) -> None:
    for placement in MOVES:
        t0 = k.now
        drv.move(bo, placement)
        blocked.append(k.now - t0)


def run_c1(k: Kernel, *, pipelined: bool = True, honour_fences: bool = True, ghost_waits: bool = True) -> None:
    """The C1 experiment (see the module docstring); the designs differ in three knobs."""
    drv = AmdgpuExporter("amdgpu", vram_pages=8, pipelined=pipelined, ghost_waits=ghost_waits)
    bo = drv.create_bo(PAGES, name="shared", placement=START, value=CONTENTS)
    buf = drv.export(bo)
    imps = [DynamicImporter(f"gpu{i}", honour_fences=honour_fences) for i in range(1, IMPORTERS + 1)]
    atts = [imp.attach(buf) for imp in imps]
    blocked: list[int] = []
    threads = [k.spawn(_importer, k, imp, att, name=f"{imp.name}-user") for imp, att in zip(imps, atts, strict=True)]
    threads.append(k.spawn(_exporter, k, drv, bo, blocked, name="exporter"))
    for t in threads:
        k.join(t)
    if any(blocked) or drv.ttm.stats.cpu_waits:
        _fail(k, "exporter-blocked", "the exporting CPU thread blocked on a fence",
              blocked_ns=blocked, cpu_waits=drv.ttm.stats.cpu_waits)
    for imp, att in zip(imps, atts, strict=True):
        imp.release(att)  # waits for the importer's last job (importer R4)
    stale = [(imp.name, job.name, job.results) for imp in imps for job in imp.jobs
             if any(v != CONTENTS for v in job.results)]
    if stale:
        _fail(k, "stale-read", "an importer read memory the move had not filled (stale read)", reads=stale[:4])
    drv.wait_idle()
    if drv.ttm.ghosts:
        _fail(k, "ghosts-kept", "old backing store not released", ghosts=len(drv.ttm.ghosts))
    buf.put()
    drv.destroy(bo)
    drv.wait_idle()


def pipelined(k: Kernel) -> None:
    """Moves are copy jobs queued behind every fence; the move fence is KERNEL (the claim): clean."""
    run_c1(k)


def importer_ignores_fences(k: Kernel) -> None:
    """Importers that do not wait for the KERNEL fence read pages before the copy filled them."""
    run_c1(k, honour_fences=False)


def ghost_frees_early(k: Kernel) -> None:
    """The old backing store is freed without waiting for the move fence.

    Freeing tears the old pages' GPU VM and IOMMU mappings down first, so
    the copy job that was still to read them faults (the GPU VM catches it:
    isolation held, ``iommu-fault``), the importers' jobs fault on their
    unmapped tables, and the new placement is never filled: the importers
    read garbage (the scenario's stale-read check, ``assertion``).
    """
    run_c1(k, ghost_waits=False)


def non_pipelined(k: Kernel) -> None:
    """The memory manager waits for every fence on the CPU: correct, but the exporter blocks."""
    run_c1(k, pipelined=False)


CLAIMS = [
    # Proved: optimal DPOR exhausts every schedule in 4,752 Mazurkiewicz traces, dropping nothing, since
    # the waiters a fence's signal wakes link their nodes in any order (dma_fence R14).
    {"id": "C1", "design": "pipelined", "scenario": pipelined, "expected": "clean", "strategy": "odpor",
     "budget": 6000},
    {
        "id": "C1",
        "design": "importer-ignores-fences",
        "scenario": importer_ignores_fences,
        "expected": Verdict(kinds=frozenset({"assertion"}), asserts=frozenset({"c1:stale-read"})),
        "budget": 100,
    },
    # "Old backing pages are freed only after the move fence signalled": freeing
    # them early faults the copy and leaves the importers reading garbage.
    {
        "id": "C1",
        "design": "ghost-frees-early",
        "scenario": ghost_frees_early,
        "expected": Verdict(kinds=frozenset({"iommu-fault", "assertion"}), asserts=frozenset({"c1:stale-read"})),
        "budget": 100,
    },
    {
        "id": "C1",
        "design": "non-pipelined",
        "scenario": non_pipelined,
        "expected": Verdict(kinds=frozenset({"assertion"}), asserts=frozenset({"c1:exporter-blocked"})),
        "budget": 50,
    },
]
