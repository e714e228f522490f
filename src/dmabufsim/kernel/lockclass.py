"""Lockdep maps of the kernel room's own objects (works, workqueues, timers).

Models the ``struct lockdep_map`` that ``INIT_WORK``, ``alloc_workqueue``
and ``timer_setup`` embed in their objects: a pseudo-lock that is never
contended, only *acquired and released* around the code it annotates
(``lock_map_acquire`` / ``lock_map_release``), so that lockdep orders it
against the real locks held around it. The kernel room may not import the
locking room (dependencies point down), so these maps talk to the held-lock
tracker installed on the running kernel (``Kernel.lockdep``), which is the
validator when lockdep is on.

Rules:

* L1 (class): maps with equal ``key`` share one lockdep class, as maps
  initialised at one site share a static ``lock_class_key``; the class is
  shown by ``name`` (the kernel's ``"(work_completion)(&job->work)"``,
  ``"(wq_completion)name"``, ``"(&timer)"`` spellings).
* L2 (annotation only): ``acquire`` / ``release`` never block and take no
  scheduling point; what they add is lockdep's view (dependencies,
  recursion, irq usage).
"""

from __future__ import annotations

from .runtime import current_kernel


class LockClassMap:
    """``struct lockdep_map`` of a kernel-room object (L1, L2)."""

    __slots__ = ("k", "key", "name", "oid")

    def __init__(self, name: str, key: object | None = None) -> None:
        self.k = current_kernel()
        self.name = name
        self.key: object = key if key is not None else name
        self.oid = self.k.new_oid()

    def acquire(self) -> None:
        """``lock_map_acquire`` (an exclusive acquisition of the pseudo-lock)."""
        self.k.lockdep.acquire(self)

    def release(self) -> None:
        """``lock_map_release``."""
        self.k.lockdep.release(self)

    def __repr__(self) -> str:
        return f"<LockClassMap {self.name}>"
