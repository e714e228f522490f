"""Models ``drivers/gpu/drm/drm_syncobj.c``: a sync object, a replaceable pointer to a fence.

A ``drm_syncobj`` is a container userspace names by handle: it holds one
reference to "the current fence" and the ioctls replace it (a new job's
fence, a signalled stub, nothing) while others look it up to wait on it.

Rules:

* R1 (ownership): the syncobj holds one reference to its current fence.
  ``replace_fence(f)`` takes a reference on ``f``, publishes it and drops the
  reference of the fence it replaced; ``free`` (``drm_syncobj_free``) drops the
  current one.
* R2 (lookup): ``fence_get`` (``drm_syncobj_fence_get``) returns a new
  reference to the current fence, or None. The pointer read and the reference
  increment must be one atomic step with respect to a replacement: the
  reference has to be taken while the syncobj's own reference still pins the
  fence. Today's kernel does the lookup with ``dma_fence_get_rcu_safe`` under
  ``rcu_read_lock`` and the replacement under ``syncobj->lock``; the 2017 fix
  took the spinlock around both (:class:`DrmSyncobj`, the default here).
* R3 (variants): :class:`DrmSyncobjUnlocked2017` is the code before the
  fix -- ``xchg`` to replace, a bare load and ``dma_fence_get`` to look up --
  where a whole replacement can run between the load and the get, and the get
  then touches a freed fence (``use-after-free``). A user writes another design
  by overriding the public :meth:`DrmSyncobj.fence_get` /
  :meth:`DrmSyncobj.replace_fence`.
"""

from __future__ import annotations

from ..dma.fence import DmaFence
from ..kernel.runtime import current_kernel
from ..kernel.trace import refcount_oid
from ..locking.spinlock import SpinLock


class DrmSyncobj:
    """``struct drm_syncobj`` with the locked lookup and replacement (R1, R2)."""

    __slots__ = ("fence", "k", "lock", "name", "oid")

    def __init__(self, name: str = "syncobj", fence: DmaFence | None = None) -> None:
        """``drm_syncobj_create``: optionally starting with ``fence`` (a reference is taken)."""
        k = current_kernel()
        self.k = k
        self.oid = k.new_oid()
        self.name = name
        self.lock = SpinLock(f"{name}.lock", key="drm_syncobj.lock")
        self.fence: DmaFence | None = fence.get() if fence is not None else None

    def fence_get(self) -> DmaFence | None:
        """``drm_syncobj_fence_get``: a new reference to the current fence, or None (R2)."""
        self.lock.lock()
        self.k.event("drm_syncobj_fence_get", self.oid, False)
        f = self.fence
        if f is not None:
            f.get()
        self.lock.unlock()
        return f

    def replace_fence(self, fence: DmaFence | None) -> None:
        """``drm_syncobj_replace_fence``: publish ``fence`` (a reference is taken), put the old one (R1)."""
        if fence is not None:
            fence.get()
        self.lock.lock()
        self.k.event("drm_syncobj_replace_fence", self.oid, True)
        old = self.fence
        self.fence = fence
        self.lock.unlock()
        if old is not None:
            old.put()

    def free(self) -> None:
        """``drm_syncobj_free``: the last handle is gone; drop the current fence (R1)."""
        self.replace_fence(None)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} fence={self.fence!r}>"


class DrmSyncobjUnlocked2017(DrmSyncobj):
    """The 2017 code before the locking patch (R3): ``xchg`` and an unprotected load + get.

    Source: Jason Ekstrand's drm_syncobj locking patch, August 2017 (dri-devel
    review; hash unverified).
    """

    __slots__ = ()

    def fence_get(self) -> DmaFence | None:
        """The old ``drm_syncobj_fence_get``: load the pointer, then ``dma_fence_get`` (two steps)."""
        k = self.k
        k.point("drm_syncobj_load", self.oid, False)
        f = self.fence
        if f is None:
            return None
        k.point("dma_fence_get", refcount_oid(f.oid), False)  # the atomic increment, its own step
        return f.get()

    def replace_fence(self, fence: DmaFence | None) -> None:
        """The old ``drm_syncobj_replace_fence``: ``xchg`` the pointer, then put the old fence."""
        if fence is not None:
            fence.get()
        k = self.k
        k.point("drm_syncobj_xchg", self.oid, True)
        old = self.fence
        self.fence = fence
        if old is not None:
            old.put()
