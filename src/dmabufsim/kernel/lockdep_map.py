"""Lockdep maps: the identity lockdep sees for a lock (its class) and annotations.

Models ``struct lockdep_map`` and ``struct lock_class_key``: every lock
carries a map naming its *class*. Locks initialised with the same name (or
the same explicit key) share one class, as locks initialised at one site in
the kernel share a static key. Pseudo-locks (``fs_reclaim``,
``dma_fence_map``, ...) are bare maps acquired and released around the code
they annotate, exactly as the kernel's ``lock_map_acquire`` /
``lock_map_release``; so are the maps that ``INIT_WORK``,
``alloc_workqueue`` and ``timer_setup`` embed in their objects
(``"(work_completion)(&job->work)"``, ``"(wq_completion)name"``,
``"(&timer)"``). The map lives in the kernel room, below the locks that
carry it, and talks to the held-lock tracker installed on the running
kernel (``Kernel.lockdep``, the validator when lockdep is on).

Rules:

* L1 (class): maps with equal ``key`` share one lockdep class, as maps
  initialised at one site share a static ``lock_class_key``; reports show
  the class by ``name``.
* L2 (annotation only): a bare map's ``acquire`` / ``release`` never block
  and take no scheduling point; what they add is lockdep's view
  (dependencies, recursion, irq usage).
"""

from __future__ import annotations

from typing import Any

from .runtime import current_kernel


class LockdepMap:
    """``struct lockdep_map``: a lock class name plus an object id.

    ``LockdepMap("my_wait")`` is also the generic annotation for scenario
    authors: ``acquire()`` / ``release()`` around a wait that is not a lock
    (``lock_map_acquire`` / ``lock_map_release``), ``acquire_read()`` for the
    recursive-read flavour (``lock_map_acquire_read``).
    """

    __slots__ = ("k", "key", "name", "oid")

    def __init__(self, name: str, key: object | None = None) -> None:
        self.k = current_kernel()
        #: The class name shown in reports.
        self.name = name
        #: The class identity: locks with equal keys share a lockdep class.
        self.key: object = key if key is not None else name
        self.oid = self.k.new_oid()

    def acquire(self, *, trylock: bool = False, subclass: int = 0, nest_lock: Any = None) -> None:
        """``lock_map_acquire``: an exclusive acquisition of the pseudo-lock."""
        self.k.lockdep.acquire(self, trylock=trylock, subclass=subclass, nest_lock=nest_lock)

    def acquire_read(self) -> None:
        """``lock_map_acquire_read``: a recursive-read acquisition."""
        self.k.lockdep.acquire(self, read=2)

    def acquire_shared(self) -> None:
        """A non-recursive read acquisition (``lock_acquire_shared``)."""
        self.k.lockdep.acquire(self, read=1)

    def release(self) -> None:
        """``lock_map_release``."""
        self.k.lockdep.release(self)

    def __enter__(self) -> LockdepMap:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def __repr__(self) -> str:
        return f"<LockdepMap {self.name}>"


def _assert_lockdep(lock: Any, held: bool) -> None:
    """Report an ``assertion`` finding when whether the current thread holds ``lock`` is not ``held``."""
    k = current_kernel()
    dep_map = getattr(lock, "dep_map", lock)
    if k.lockdep.is_held(dep_map) != held:
        what, must = ("held", "must") if held else ("not_held", "must not")
        k.report(
            "assertion",
            f"WARNING: lockdep_assert_{what}({dep_map.name}) failed",
            details={"lock": dep_map.name},
            rule=f"lockdep: the caller {must} hold the lock",
            signature=f"assert-{what.replace('_', '-')}:{dep_map.name}",
        )


def lockdep_assert_held(lock: Any) -> None:
    """``lockdep_assert_held``: report an ``assertion`` finding when the current thread does not hold ``lock``."""
    _assert_lockdep(lock, True)


def lockdep_assert_not_held(lock: Any) -> None:
    """``lockdep_assert_not_held``: report when the current thread holds ``lock``."""
    _assert_lockdep(lock, False)
