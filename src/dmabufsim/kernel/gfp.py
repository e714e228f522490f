"""GFP flags and the memalloc scopes that restrict them.

Models ``include/linux/gfp_types.h`` and ``include/linux/sched/mm.h``
(``memalloc_noio_save`` / ``memalloc_nofs_save`` / ``memalloc_noreclaim_save``,
``current_gfp_context``).

Rules:

* R1: an allocation may sleep iff its flags allow direct reclaim
  (``gfpflags_allow_blocking``): ``GFP_KERNEL``, ``GFP_NOFS`` and
  ``GFP_NOIO`` may; ``GFP_ATOMIC`` and ``GFP_NOWAIT`` never do.
* R2: only an allocation that may enter *filesystem* reclaim (``__GFP_FS``
  together with direct reclaim) takes the ``fs_reclaim`` lockdep map;
  ``GFP_NOFS``, ``GFP_NOIO`` and the atomic ones do not.
* R3: a ``memalloc_noio`` scope clears ``__GFP_IO | __GFP_FS`` from every
  allocation of the thread inside it; ``memalloc_nofs`` clears ``__GFP_FS``.
* R4 (PF_MEMALLOC): ``memalloc_noreclaim_save`` sets the thread's
  ``PF_MEMALLOC`` (``KThread.in_reclaim`` > 0, the flag direct reclaim itself
  runs with) and returns the previous state; ``memalloc_noreclaim_restore``
  puts it back. Inside, no allocation enters direct reclaim (the allocator
  may dip into the reserves instead), and lockdep sees no ``fs_reclaim``
  acquisition (``__need_reclaim`` is false for a ``PF_MEMALLOC`` task). The
  flags are unchanged: a sleeping allocation still sleeps (``might_sleep``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from enum import IntFlag

from .errors import UsageError
from .runtime import current_kernel


class GFP(IntFlag):
    """The GFP modifier bits the model distinguishes."""

    DIRECT_RECLAIM = 0x1  #: __GFP_DIRECT_RECLAIM: the caller may sleep in reclaim
    KSWAPD_RECLAIM = 0x2  #: __GFP_KSWAPD_RECLAIM: may wake kswapd
    IO = 0x4  #: __GFP_IO: reclaim may start physical I/O
    FS = 0x8  #: __GFP_FS: reclaim may call into filesystems (and shrinkers)
    HIGH = 0x10  #: __GFP_HIGH: may use emergency reserves
    NORETRY = 0x20  #: __GFP_NORETRY: fail rather than retry hard
    NOWARN = 0x40  #: __GFP_NOWARN


__GFP_DIRECT_RECLAIM = GFP.DIRECT_RECLAIM
__GFP_KSWAPD_RECLAIM = GFP.KSWAPD_RECLAIM
__GFP_RECLAIM = GFP.DIRECT_RECLAIM | GFP.KSWAPD_RECLAIM
__GFP_IO = GFP.IO
__GFP_FS = GFP.FS
__GFP_NORETRY = GFP.NORETRY
__GFP_NOWARN = GFP.NOWARN

GFP_KERNEL = __GFP_RECLAIM | GFP.IO | GFP.FS
GFP_NOFS = __GFP_RECLAIM | GFP.IO
GFP_NOIO = __GFP_RECLAIM
GFP_ATOMIC = GFP.HIGH | GFP.KSWAPD_RECLAIM
GFP_NOWAIT = GFP.KSWAPD_RECLAIM

_NAMES = {
    GFP_KERNEL: "GFP_KERNEL",
    GFP_NOFS: "GFP_NOFS",
    GFP_NOIO: "GFP_NOIO",
    GFP_ATOMIC: "GFP_ATOMIC",
    GFP_NOWAIT: "GFP_NOWAIT",
}


def gfp_name(gfp: GFP) -> str:
    """The kernel spelling of a flag set (``GFP_KERNEL|__GFP_NORETRY``)."""
    base = gfp & ~(GFP.NORETRY | GFP.NOWARN)
    name = _NAMES.get(GFP(base), f"0x{int(base):x}")
    if gfp & GFP.NORETRY:
        name += "|__GFP_NORETRY"
    if gfp & GFP.NOWARN:
        name += "|__GFP_NOWARN"
    return name


def gfpflags_allow_blocking(gfp: GFP) -> bool:
    """R1: may an allocation with these flags sleep?"""
    return bool(gfp & GFP.DIRECT_RECLAIM)


def current_gfp_context(gfp: GFP) -> GFP:
    """R3: the flags after the current thread's memalloc scopes are applied."""
    scopes = current_kernel().current.gfp_scope
    if not scopes:
        return gfp
    if "noio" in scopes:
        return gfp & ~(GFP.IO | GFP.FS)
    if "nofs" in scopes:
        return gfp & ~GFP.FS
    return gfp


def enters_fs_reclaim(gfp: GFP) -> bool:
    """R2: does an allocation with these flags (after scopes) take ``fs_reclaim``?"""
    g = current_gfp_context(gfp)
    return bool(g & GFP.DIRECT_RECLAIM) and bool(g & GFP.FS)


#: ``PF_MEMALLOC`` as ``memalloc_noreclaim_save`` returns it.
PF_MEMALLOC = 0x00000800


def memalloc_noreclaim_save() -> int:
    """``memalloc_noreclaim_save``: set ``PF_MEMALLOC`` on the current thread (R4).

    Returns the flag as it was (``PF_MEMALLOC`` or 0) for :func:`memalloc_noreclaim_restore`.
    """
    t = current_kernel().current
    old = PF_MEMALLOC if t.in_reclaim else 0
    t.in_reclaim += 1
    return old


def memalloc_noreclaim_restore(flags: int) -> None:
    """``memalloc_noreclaim_restore``: end the scope :func:`memalloc_noreclaim_save` opened (R4).

    ``flags`` is what the matching save returned. The model keeps ``PF_MEMALLOC`` as a
    depth (direct reclaim raises it too), so scopes must nest: restoring ``0`` while an
    outer scope is still open is a misuse of the model's API.
    """
    t = current_kernel().current
    if t.in_reclaim <= 0 or (not flags & PF_MEMALLOC and t.in_reclaim != 1):
        raise UsageError("memalloc_noreclaim_restore does not match the innermost memalloc_noreclaim_save")
    t.in_reclaim -= 1


@contextmanager
def memalloc_noreclaim() -> Iterator[None]:
    """``memalloc_noreclaim_save`` ... ``memalloc_noreclaim_restore`` as a ``with`` scope (R4)."""
    flags = memalloc_noreclaim_save()
    try:
        yield
    finally:
        memalloc_noreclaim_restore(flags)


@contextmanager
def memalloc_noio() -> Iterator[None]:
    """``memalloc_noio_save`` ... ``memalloc_noio_restore`` as a ``with`` scope."""
    t = current_kernel().current
    t.gfp_scope.append("noio")
    try:
        yield
    finally:
        t.gfp_scope.remove("noio")


@contextmanager
def memalloc_nofs() -> Iterator[None]:
    """``memalloc_nofs_save`` ... ``memalloc_nofs_restore`` as a ``with`` scope."""
    t = current_kernel().current
    t.gfp_scope.append("nofs")
    try:
        yield
    finally:
        t.gfp_scope.remove("nofs")
