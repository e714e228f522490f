"""Claim C2 (Chris): the non-pipelined revoke needs a completion the CPU can wait on.

  "the situation I have in mind is the non-pipelined case: revoking dma-buf
  for mmu_invalidate_range or shrink_slab. I would need a completion event
  that can be waited on the cpu for all the invalidate callbacks.
  (Essentially an atomic_t counter plus struct completion; a lighter
  version of dma_fence ...)"

The experiment: an amdgpu-like exporter shares a buffer in GTT with two
dynamic importers -- a fast one (20 us jobs) and a slow one (200 us jobs)
-- whose devices sit behind no IOMMU (passthrough, as on many machines:
nothing turns a late access into a fault). Each keeps reading the buffer.
A reclaim-like thread trylocks the reservation object (a shrinker may only
trylock, claim C5), revokes the buffer (:meth:`~dmabufsim.dma.dma_buf.DmaBuf.revoke`,
dma-buf R11), and frees the backing store *without waiting for fences* --
it trusts the revocation to mean "no importer touches the pages any more".

Designs:

* ``counted-completion`` (the claim): :class:`~dmabufsim.dma.dma_buf.DmaBufRevocation`
  is a counter plus a completion; each importer's worker tears its table
  down and puts its count once its last job finished; the revoker's wait
  returns at the last put. Clean.
* ``first-completion``: one plain completion every importer completes:
  the wait returns when the *fast* importer is done, the revoker frees
  while the slow importer's job still reads -- ``dma-freed-page``. (Behind
  an IOMMU the same early return shows as an IOMMU fault instead: isolation
  held, the job's data lost.)
"""

from __future__ import annotations

from typing import Any

from ..device.ttm import GTT
from ..drivers.amdgpu_exporter import AmdgpuExporter
from ..drivers.dma_buf_importers import DynamicImporter
from ..kernel.runtime import Kernel
from .catalog import Verdict

#: Job lengths of the two importers (virtual ns).
FAST_NS = 20_000
SLOW_NS = 200_000
#: When the revoker starts (the first jobs are in flight by then).
REVOKE_AT_NS = 5_000
#: How long a busy reservation object makes the revoker retry (a shrinker would skip it).
RETRY_NS = 1_000


def _reader(imp: DynamicImporter, att: Any, duration_ns: int, jobs: int) -> None:
    for _ in range(jobs):
        fence = imp.access(att, write=False, duration_ns=duration_ns)
        if fence is None:
            return  # revoked
        fence.wait()


def _revoker(k: Kernel, bo: Any, buf: Any, counted: bool, out: dict[str, Any]) -> None:
    k.nsleep(REVOKE_AT_NS)
    while not bo.resv.trylock():
        k.nsleep(RETRY_NS)
    try:
        buf.revoke(counted=counted)
        out["revoked_at"] = k.now
        # "No importer touches the pages": free at once, no fence wait.
        bo.release_backing(wait=False)
    finally:
        bo.resv.unlock()


def run_c2(k: Kernel, *, counted: bool) -> None:
    """The C2 experiment (see the module docstring)."""
    drv = AmdgpuExporter("amdgpu", vram_pages=8)
    bo = drv.create_bo(2, name="shared", placement=(GTT,), value="data")
    buf = drv.export(bo)
    fast = DynamicImporter("fast-gpu", iommu=False)
    slow = DynamicImporter("slow-gpu", iommu=False)
    fa, sa = fast.attach(buf), slow.attach(buf)
    out: dict[str, Any] = {}
    threads = [
        k.spawn(_reader, fast, fa, FAST_NS, 20, name="fast-user"),
        k.spawn(_reader, slow, sa, SLOW_NS, 3, name="slow-user"),
        k.spawn(_revoker, k, bo, buf, counted, out, name="reclaim"),
    ]
    for t in threads:
        k.join(t)
    fast.release(fa)
    slow.release(sa)
    buf.put()
    drv.destroy(bo)
    drv.wait_idle()


def counted_completion(k: Kernel) -> None:
    """Revoke waits on a counter plus completion: returns after the slowest importer. Clean."""
    run_c2(k, counted=True)


def first_completion(k: Kernel) -> None:
    """Revoke waits on one plain completion: returns after the fastest importer; the slow one's DMA hits freed pages."""
    run_c2(k, counted=False)


CLAIMS = [
    {"id": "C2", "design": "counted-completion", "scenario": counted_completion, "expected": "clean",
     "budget": 200},
    {
        "id": "C2",
        "design": "first-completion",
        "scenario": first_completion,
        "expected": Verdict(kinds=frozenset({"dma-freed-page"})),
        "budget": 100,
    },
]
