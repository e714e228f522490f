"""The modern answers the kernel later adopted, as catalog rows (M2, M3).

docs/claims.md: beyond the thread, the kernel's later answers run clean in
the same catalog. Two of them are exactly the designs some claims'
experiments already run, so these rows
name those experiments (catalog R6: ``same_as``) instead of copying them;
``dmabufsim check`` reports the one exploration under both rows.

* M2, dynamic importers with ``move_notify`` (v5.x ``dma_buf_dynamic_attach``):
  the experiment of C1/pipelined. The exporter moves a shared buffer
  without blocking; each dynamic importer is told through ``move_notify``
  (with the reservation lock held), re-maps, and orders its next job after
  the move's KERNEL fence. Clean.
* M3, userptr on ``mmu_interval_notifier`` with ``read_begin`` /
  ``read_retry`` under the driver's notifier lock (v5.5+, the shared helper
  of C16): the experiments of C11/helper-fork and C11/helper-mprotect.
  Coherent in every explored schedule, no userspace-visible incoherence.

M1 (``dma_resv`` usage levels) is :mod:`.modern_resv_usage`; M4
(fence-signalling annotations) is :mod:`.modern_fence_signalling`.
"""

from __future__ import annotations

CLAIMS = [
    {
        "id": "M2",
        "design": "dynamic-importers",
        "same_as": "C1/pipelined",
        "doc": "Dynamic importers told by move_notify re-map and wait for the move's KERNEL fence "
        "(the experiment of C1/pipelined).",
    },
    {
        "id": "M3",
        "design": "interval-notifier-fork",
        "same_as": "C11/helper-fork",
        "doc": "Userptr through the shared interval-notifier helper racing fork() "
        "(the experiment of C11/helper-fork).",
    },
    {
        "id": "M3",
        "design": "interval-notifier-mprotect",
        "same_as": "C11/helper-mprotect",
        "doc": "Userptr through the shared interval-notifier helper racing mprotect(PROT_READ) "
        "(the experiment of C11/helper-mprotect).",
    },
]
