"""Models the modern userptr driver: ``amdgpu_hmm.c`` + ``amdgpu_cs.c`` (6.x), xe's userptr, on the shared helper.

The reference driver of the model that passes the coherence claims (C11,
C13, C14, C15): it keeps no userptr logic of its own. Every object is a
:class:`~.userptr_helper.Userptr` (claim C16) and every object of a device
shares the device's one notifier lock (``adev->notifier_lock``), as amdgpu
does today.

Rules:

* R1: :meth:`ModernUserptrDriver.create` = ``amdgpu_gem_userptr_ioctl`` +
  ``amdgpu_hmm_register``: an interval notifier over the object's range.
* R2: :meth:`ModernUserptrDriver.exec` = ``amdgpu_cs_ioctl`` for a job
  naming the object: the helper's submit (lookup, reserve, notifier lock,
  ``read_retry``, push, fence).
* R3: :meth:`ModernUserptrDriver.close` = ``amdgpu_hmm_unregister`` + BO free.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..device.device import Device, DmaOp
from ..dma.fence import DmaFence
from ..mm.memory import MmStruct
from .userptr_common import UserptrBo
from .userptr_helper import Userptr, notifier_lock


class ModernUserptrDriver:
    """One device's userptr support, entirely on the shared helper (R1-R3)."""

    def __init__(self, dev: Device) -> None:
        self.dev = dev
        #: ``adev->notifier_lock``: one per device, taken by every object's invalidate.
        self.notifier_lock = notifier_lock(f"{dev.name}.notifier_lock")
        self.objects: list[Userptr] = []

    def create(self, mm: MmStruct, start: int, npages: int, *, writable: bool = True,
               name: str = "userptr") -> Userptr:
        """R1."""
        up = Userptr(UserptrBo(self.dev, mm, start, npages, writable=writable, name=name), self.notifier_lock)
        self.objects.append(up)
        return up

    def exec(self, up: Userptr, ops: Sequence[DmaOp], **job: Any) -> DmaFence:
        """R2."""
        return up.submit(ops, **job)

    def close(self, up: Userptr) -> None:
        """R3."""
        self.objects.remove(up)
        up.destroy()
