"""Models ``mm/mmu_notifier.c`` and ``include/linux/mmu_notifier.h``: the subscriptions of an mm.

A secondary MMU (a GPU's page tables, an IOMMU, a userptr object) keeps
copies of a process's CPU mappings. The core mm tells it, through the hook
points of ``notifier_hooks.py`` (``mmu_notifier_invalidate_range_start`` /
``_end``, which hold the lockdep map and bracket every PTE change), before
and after it changes those mappings. This module is what sits behind the
hooks: per mm one :class:`MMUNotifierSubscriptions` (``struct
mmu_notifier_subscriptions``), registered as the mm's subscriber on first
use, holding the classic subscribers (:class:`MMUNotifier`, registration
order), the interval subscriptions (:class:`MMUIntervalNotifier`,
``struct mmu_interval_notifier``, v5.5+) and the sequence counter they
share; it calls them as the kernel's ``mn_itree_invalidate`` and
``mn_hlist_invalidate_range_start`` do (intervals first, then the classic
list). Both kinds of subscription live here, as in the kernel's one file:
the subscriptions object dispatches to both, and both register through it.

An interval subscription watches ``[start, start + length)`` of one mm. Its
``invalidate`` callback is called for every invalidation that overlaps the
interval; drivers pair it with a *sequence* so that a mapping built from
pages looked up before an invalidation is never published after it
(``Documentation/mm/hmm.rst``)::

    again:
        seq = sub.read_begin()
        pages = look up / pin the pages          # not under the notifier lock
        with driver.notifier_lock:
            if sub.read_retry(seq):
                goto again                        # an invalidation collided
            program the device                    # pages are current here
    invalidate(sub, range, cur_seq):
        if not range.blockable: return False
        with driver.notifier_lock:
            sub.set_seq(cur_seq)
            stop device access to the range

Rules:

* R1 (bracket): ``invalidate_range_start`` and ``invalidate_range_end`` are
  paired per range (``notifier_hooks`` R1); between them no secondary MMU
  may establish a new mapping in the range. Several ranges of one mm may be
  in flight at once, nested in one thread or from several threads.
* R2 (lockdep): the hooks hold ``mmu_notifier_invalidate_range_start``
  around every start and every end callback (``notifier_hooks`` R2), so
  every lock a callback takes is ordered after it.
* R3 (blockable): ``invalidate_range_start`` sets ``blockable``: callbacks
  may sleep and must succeed. A classic callback raising ``EAGAIN`` or an
  interval callback returning False in a blockable range is a kernel WARN:
  an ``assertion`` finding; the invalidation goes on.
* R4 (non-blockable, the OOM reaper):
  ``invalidate_range_start_nonblock`` clears ``blockable`` and runs every
  callback inside a ``non_block`` section: a callback that sleeps is a
  ``sleep-in-atomic`` finding. A callback that would have to sleep must
  answer ``EAGAIN`` (classic) or False (interval). Then the core calls
  ``invalidate_range_end`` of the classic subscribers that already
  succeeded, ends the interval side, and raises ``EAGAIN``; the caller must
  neither change the page tables nor call ``invalidate_range_end``.
* R5 (sequence, shared with the interval subscriptions, R11-R15): per mm
  ``invalidate_seq`` starts at 2; even = idle, odd = an invalidation that
  overlaps at least one interval subscription is in progress. Every range
  start counts one more active range; the last range end of an odd period
  makes the sequence even again, applies deferred interval inserts and
  removals, and wakes the threads waiting in ``read_begin``/``remove``.
  When a classic subscriber refuses a non-blockable range after the
  interval side started, the model also ends the interval side (the count
  of active ranges must not leak: no ``end`` will follow). A range that
  started before the mm's first interval subscription was inserted is not
  counted, and its end does not uncount it (the kernel gets the same by
  registering the interval tree under ``mmap_lock`` for write, which no
  range in flight lets it take).
* R6 (registration): a subscription is registered on a live mm once;
  registering twice, unregistering an unregistered subscription, or
  unregistering from inside a callback raise ``UsageError``.
* R9 (variant, before 2021): until Sean Christopherson's "mm/mmu_notifiers:
  ensure range_end() is paired with range_start()" (Message-ID
  20210311180057.1582638-1-seanjc@google.com, Linux 5.12), a refused
  non-blockable range ended *no* classic subscriber: the ones whose start had
  succeeded never got their ``invalidate_range_end``. ``mmu_notifier_variant(
  mm, paired_end=False)`` selects that behaviour for one mm (to run the old
  code); the default is today's R4.
* R8 (completion, claim C15): when every callback of a range returned
  without ``EAGAIN`` -- blockable or not: a non-blockable callback that
  accepts the range claims completion just the same -- no IOMMU
  entry made *for this mm at an address of the range* may still reach a
  page the range maps: each one left is a ``stale-mapping`` finding
  ("IOMMU mapping survives a completed invalidation"). Checked only when
  the mm has a subscriber covering the range (someone claims completion).
  An ATS IOTLB entry of an SVA device (``device/sva.py``) is not such a
  mapping: it caches the CPU PTE itself and is flushed by R10's hook, after
  the PTE is cleared.
* R10 (secondary TLBs): ``arch_invalidate_secondary_tlbs(mm, start, end)``
  calls the hook of every classic subscriber whose ops define one, in
  registration order, after the core mm cleared the PTEs of the range and
  before it frees their pages (``notifier_hooks`` R5). Interval
  subscriptions have no such hook (as in the kernel).
* R7 (release): ``release`` (``exit_mmap``) calls every classic
  subscriber's ``release`` once and drops it from the list; after it, the
  secondary MMU must not touch the mm. Interval subscriptions stay and are
  invalidated by the teardown like by any unmap.
* R11 (insert): ``insert(mm, start, length, ops)`` rejects a zero or
  overflowing length (``EINVAL``, the kernel's -EOVERFLOW). Inserted while
  idle, the interval's sequence is the global one minus 1 (odd, never
  equal to it); inserted during an invalidation, it equals the global odd
  sequence (so ``read_begin`` waits for that invalidation) and, if the
  invalidation overlaps intervals, the tree update is deferred to its end.
* R12 (read_begin): returns the interval's sequence; if it equals the
  global sequence (an invalidation of *this* interval is in progress) it
  first sleeps until the global sequence changes. It acquires and releases
  the ``mmu_notifier_invalidate_range_start`` map: calling it holding a
  lock that an ``invalidate`` callback takes is a lockdep cycle.
* R13 (read_retry): true iff the interval's sequence differs from ``seq``;
  it must be called holding the same driver lock the ``invalidate``
  callback holds around ``set_seq`` (``lock`` given to
  :meth:`MMUIntervalNotifier.read_retry`; a call without it is an
  ``assertion`` finding). ``check_retry`` is the lockless advisory check.
* R14 (set_seq): only from ``invalidate``, with the ``cur_seq`` it was given.
* R15 (remove): waits for an in-progress invalidation that still sees the
  interval; after it returns no callback runs. Same lockdep rule as
  ``read_begin``. Called from the interval's own ``invalidate`` callback
  it does what the kernel does: lockdep reports the recursive acquisition
  of ``mmu_notifier_invalidate_range_start`` and the thread then waits for
  the end of the invalidation it is itself running -- forever (the
  "tear a range down from the notifier" mistake; drivers defer it to a
  worker, ``drm_gpusvm``'s garbage collector).
"""

from __future__ import annotations

from typing import Any

from ..kernel.errors import EAGAIN, EINVAL, UsageError
from ..kernel.runtime import Kernel, current_kernel
from ..kernel.wait import WaitQueue
from ..locking.annotations import mmu_notifier_map
from .notifier_hooks import MmuNotifierRange, MmuNotifyEvent
from .page import PAGE_SHIFT

#: The kernel's spelling of the record and the event enum (defined by the hooks).
MMUNotifierRange = MmuNotifierRange
MMUNotifierEvent = MmuNotifyEvent

#: The name of the ``non_block_start`` section of R4 (shown in reports).
NON_BLOCK = "mmu_notifier_invalidate_range_start_nonblock"


class MMUNotifierOps:
    """``struct mmu_notifier_ops`` of a classic subscriber (extension contract).

    Subclass and override what the secondary MMU needs:

    * ``invalidate_range_start(sub, range)``: stop using the range's pages
      before the CPU mapping changes. May sleep only if
      ``range.blockable``; otherwise raise ``EAGAIN`` instead of sleeping
      (R4). In a blockable range it must not fail (R3).
    * ``invalidate_range_end(sub, range)``: the change is done; new
      mappings may be established again (a subscriber whose start can fail
      in non-blockable mode should not need ``end``).
    * ``release(sub, mm)``: the mm is going away; stop every access.

    Must never: unregister itself from a callback, allocate with direct
    reclaim (GFP_KERNEL/NOFS/NOIO) inside a callback, or take a lock that
    is held elsewhere across such an allocation (lockdep reports both).
    """

    def invalidate_range_start(self, sub: MMUNotifier, range: MmuNotifierRange) -> None:
        """``invalidate_range_start``: raise ``EAGAIN`` to refuse a non-blockable range."""

    def invalidate_range_end(self, sub: MMUNotifier, range: MmuNotifierRange) -> None:
        """``invalidate_range_end``."""

    def release(self, sub: MMUNotifier, mm: Any) -> None:
        """``release``: the mm is torn down."""

    #: ``arch_invalidate_secondary_tlbs(sub, mm, start, end)``: a subclass that
    #: defines it is called between the PTE clear and the page free (R10,
    #: ``notifier_hooks`` R5); it must not sleep. None: not called.
    arch_invalidate_secondary_tlbs: Any = None


class MMUNotifierSubscriptions:
    """``struct mmu_notifier_subscriptions``: the notifier state of one mm.

    Invariants: ``invalidate_seq`` is odd iff an invalidation overlapping an
    interval subscription is in progress (then ``active_invalidate_ranges``
    > 0); ``deferred`` is empty while the sequence is even.
    """

    #: ``in_callback``: which threads are inside a callback, for the API-misuse errors;
    #: each thread only ever looks for itself (thread-local, accesses A3).
    __untracked__ = ("in_callback",)
    __slots__ = (
        "active_invalidate_ranges",
        "deferred",
        "has_itree",
        "in_callback",
        "intervals",
        "invalidate_seq",
        "itree_ranges",
        "k",
        "mm",
        "oid",
        "paired_end",
        "released",
        "subscribers",
        "wq",
    )

    def __init__(self, mm: Any) -> None:
        self.k = current_kernel()
        self.oid = self.k.new_oid()
        self.mm = mm
        #: Classic subscribers, registration order.
        self.subscribers: list[MMUNotifier] = []
        #: Interval subscriptions in the tree, insertion order (overlap queries scan it).
        self.intervals: list[MMUIntervalNotifier] = []
        #: R5: even = idle, odd = invalidating.
        self.invalidate_seq = 2
        self.active_invalidate_ranges = 0
        #: (insert?, subscription) updates postponed to the end of an odd period.
        self.deferred: list[tuple[bool, MMUIntervalNotifier]] = []
        #: ``subscriptions->wq``: read_begin / remove wait for the sequence to move.
        self.wq = WaitQueue("mmu_notifier_subscriptions.wq")
        #: Threads (tids) currently inside a callback of this mm (R6).
        self.in_callback: list[int] = []
        self.released = False
        #: ``has_itree``: an interval subscription was inserted once (ranges are counted from then on).
        self.has_itree = False
        #: Ranges in flight that entered the interval side (R5): only their ends leave it.
        self.itree_ranges: list[MmuNotifierRange] = []
        #: R4 (True, since 2021) or R9 (False): end the started subscribers when one refuses.
        self.paired_end = True

    @property
    def is_invalidating(self) -> bool:
        """``mn_itree_is_invalidating``: the sequence is odd."""
        return bool(self.invalidate_seq & 1)

    def overlapping(self, start: int, end: int) -> list[MMUIntervalNotifier]:
        """Interval subscriptions in the tree that intersect ``[start, end)``."""
        return [s for s in self.intervals if s.start < end and start < s.end]

    # -- the mm's subscriber interface (``notifier_hooks.MmuSubscriber``)

    def invalidate_range_start(self, range: MmuNotifierRange) -> None:
        """``__mmu_notifier_invalidate_range_start``: intervals, then classic subscribers (R3-R5).

        Raises ``EAGAIN`` when a callback refused a non-blockable range
        (everything already started has been ended).
        """
        k = self.k
        me = k.current.tid
        self.in_callback.append(me)
        try:
            k.event("mmu_notifier_range_start", self.oid, False)  # has_itree, under subscriptions->lock
            counted = self.has_itree
            if counted and not _itree_start(k, self, range):
                raise EAGAIN("mmu_notifier_invalidate_range_start_nonblock: an interval notifier would block")
            if not _hlist_start(k, self, range):
                if counted:
                    _itree_end(k, self)
                raise EAGAIN("mmu_notifier_invalidate_range_start_nonblock: a subscriber would block")
        finally:
            self.in_callback.remove(me)
        if counted:
            self.itree_ranges.append(range)
        # Returning without EAGAIN claims completion, blockable or not (R8, C15).
        if self.subscribers or self.overlapping(range.start, range.end):
            _check_completion(k, self, range)

    def invalidate_range_end(self, range: MmuNotifierRange) -> None:
        """``__mmu_notifier_invalidate_range_end``: end the interval period, then the classic list."""
        k = self.k
        me = k.current.tid
        self.in_callback.append(me)
        try:
            if range in self.itree_ranges:
                self.itree_ranges.remove(range)
                _itree_end(k, self)
            # The classic list, read under SRCU: ordered with register / release (their writes).
            k.event("mmu_notifier_invalidate_range_end", self.oid, False)
            for sub in list(self.subscribers):
                _enter_nb(k, range)
                try:
                    sub.ops.invalidate_range_end(sub, range)
                finally:
                    _exit_nb(k, range)
        finally:
            self.in_callback.remove(me)

    def arch_invalidate_secondary_tlbs(self, mm: Any, start: int, end: int) -> None:
        """``__mmu_notifier_arch_invalidate_secondary_tlbs``: each classic subscriber's hook (R10)."""
        # The classic list, read under SRCU: ordered with register / release (their writes). Declared
        # before the emptiness test, which reads it too (mm_has_notifiers).
        self.k.event("mmu_notifier_arch_invalidate_secondary_tlbs", self.oid, False)
        if not self.subscribers:
            return
        for sub in list(self.subscribers):
            hook = sub.ops.arch_invalidate_secondary_tlbs
            if hook is not None:
                hook(sub, mm, start, end)

    def release(self, mm: Any) -> None:
        """``__mmu_notifier_release`` (``exit_mmap``): every classic subscriber's ``release`` once (R7).

        The classic subscribers leave the list (as ``hlist_del_init_rcu``);
        interval subscriptions stay and see the teardown's invalidations.
        """
        k = self.k
        if self.released:
            return
        k.point("mmu_notifier_release", self.oid, True)
        self.released = True
        me = k.current.tid
        self.in_callback.append(me)
        try:
            while self.subscribers:
                sub = self.subscribers.pop(0)
                sub.registered = False
                sub.ops.release(sub, mm)
        finally:
            self.in_callback.remove(me)

    def __repr__(self) -> str:
        return (f"<MMUNotifierSubscriptions mm#{getattr(self.mm, 'oid', '?')} seq={self.invalidate_seq} "
                f"active={self.active_invalidate_ranges} subs={len(self.subscribers)} "
                f"intervals={len(self.intervals)}>")


def _mm_oid(mm: Any) -> int:
    oid = getattr(mm, "oid", None)
    if not isinstance(oid, int):
        raise UsageError(f"an mm needs an integer 'oid' (a model object), got {mm!r}")
    return oid


def subscriptions(mm: Any, *, create: bool = False, k: Kernel | None = None) -> MMUNotifierSubscriptions | None:
    """``mm->notifier_subscriptions``: the mm's notifier state (created on first registration)."""
    k = k or current_kernel()
    table: dict[int, MMUNotifierSubscriptions] = k.ext.setdefault("mmu_notifier_subscriptions", {})
    oid = _mm_oid(mm)
    subs = table.get(oid)
    if subs is None and create:
        subs = table[oid] = MMUNotifierSubscriptions(mm)
        # The hooks of the core mm call the subscriptions object (notifier_hooks R1).
        mm.notifier_subscribe(subs)
    return subs


def mmu_notifier_variant(mm: Any, *, paired_end: bool = True) -> MMUNotifierSubscriptions:
    """Select the notifier core's behaviour of another year for ``mm`` (R9); returns its subscriptions.

    ``paired_end=False``: the core before Linux 5.12 (Message-ID
    20210311180057.1582638-1-seanjc@google.com): a subscriber refusing a
    non-blockable range leaves the ones already started without their
    ``invalidate_range_end``.
    """
    subs = subscriptions(mm, create=True)
    assert subs is not None
    subs.paired_end = paired_end
    return subs


def mm_has_notifiers(mm: Any) -> bool:
    """``mm_has_notifiers``: does anything subscribe to this mm?"""
    subs = subscriptions(mm)
    return subs is not None and bool(subs.subscribers or subs.intervals or subs.deferred)


class MMUNotifier:
    """``struct mmu_notifier``: a classic subscriber with its ops.

    ``MMUNotifier(ops).register(mm)`` is ``mmu_notifier_register``;
    ``unregister()`` is ``mmu_notifier_unregister``.
    """

    __slots__ = ("k", "mm", "oid", "ops", "registered")

    def __init__(self, ops: MMUNotifierOps) -> None:
        self.k = current_kernel()
        self.oid = self.k.new_oid()
        self.ops = ops
        self.mm: Any = None
        self.registered = False

    def register(self, mm: Any) -> None:
        """``mmu_notifier_register`` (R6). Later ranges of ``mm`` call this subscriber."""
        k = self.k
        if self.registered:
            raise UsageError("mmu_notifier_register: this subscription is already registered")
        subs = subscriptions(mm, create=True, k=k)
        assert subs is not None
        if subs.released or getattr(mm, "dead", False):
            raise UsageError("mmu_notifier_register on an mm that was already torn down")
        k.might_sleep("mmu_notifier_register")
        k.point("mmu_notifier_register", subs.oid, True)
        self.mm = mm
        self.registered = True
        subs.subscribers.append(self)

    def unregister(self) -> None:
        """``mmu_notifier_unregister`` (R6): no callback of this subscriber runs after it returns."""
        k = self.k
        subs = subscriptions(self.mm, k=k) if self.mm is not None else None
        if not self.registered:
            if subs is not None and subs.released:
                return  # exit_mmap's release already dropped it (R7)
            raise UsageError("mmu_notifier_unregister of a subscription that is not registered")
        assert subs is not None
        if k.current.tid in subs.in_callback:
            raise UsageError("mmu_notifier_unregister called from inside a notifier callback")
        k.might_sleep("mmu_notifier_unregister")
        k.point("mmu_notifier_unregister", subs.oid, True)
        subs.subscribers.remove(self)
        self.registered = False

    def __repr__(self) -> str:
        return f"<MMUNotifier #{self.oid} {type(self.ops).__name__}>"


def _check_completion(k: Kernel, subs: MMUNotifierSubscriptions, range: MmuNotifierRange) -> None:
    """R8 (claim C15): nothing made for this mm's range may reach its pages once the callbacks returned."""
    mm = subs.mm
    # The check reads the page tables and each page's device mappings: the step declares them
    # (before the first read: an rmap walk, try_to_unmap, calls this without mmap_lock).
    k.event("mmu_notifier_check", getattr(mm, "oid", subs.oid), False)
    ptes: dict[int, Any] | None = getattr(mm, "ptes", None)
    if not ptes:
        return
    lo, hi = range.start >> PAGE_SHIFT, (range.end + (1 << PAGE_SHIFT) - 1) >> PAGE_SHIFT
    vpns = sorted(v for v in ptes if lo <= v < hi)
    for vpn in vpns:
        page = ptes[vpn].page
        k.event("mmu_notifier_check", page.oid, False)
        for rec in page.dev_maps:
            if getattr(rec, "ats", False):
                continue  # an ATS IOTLB entry mirrors the CPU PTE: the secondary-TLB hook flushes it (R10)
            if getattr(rec, "user_mm", None) is not mm or not range.start <= rec.user_va < range.end:
                continue
            dev = rec.domain.name
            k.report(
                "stale-mapping",
                "IOMMU mapping survives a completed mmu_notifier invalidation",
                details={"device": dev, "iova": f"{rec.iova:#x}", "user_va": f"{rec.user_va:#x}", "pfn": page.pfn,
                         "event": range.event.value, "range": f"[{range.start:#x}, {range.end:#x})"},
                rule="mmu_notifier R8: the IOMMU mapping is gone when the notifier says it is (C15)",
                signature=f"c15-stale-mapping:{getattr(mm, 'name', 'mm')}:{dev}:{range.event.value}",
                text=(f"mmu_notifier: invalidate_range_start({range.event.value}) of "
                      f"[{range.start:#x}, {range.end:#x}) returned, but {dev} can still reach pfn {page.pfn} "
                      f"(user va {rec.user_va:#x}) through iova {rec.iova:#x}"),
            )


def _warn(k: Kernel, what: str, range: MmuNotifierRange, who: str) -> None:
    k.report(
        "assertion",
        f"WARNING: {what} failed in a blockable mmu_notifier range",
        details={"callback": who, "range": f"[{range.start:#x}, {range.end:#x})", "event": range.event.value},
        rule="mmu_notifier R3: callbacks of a blockable range must not fail",
        signature=f"mmu-notifier-blockable-fail:{who}",
        text=(f"WARNING: CPU: 0 PID: {k.current.tid} at mm/mmu_notifier.c\n"
              f"{who} refused the blockable range [{range.start:#x}, {range.end:#x}) ({range.event.value})"),
    )


def _itree_start(k: Kernel, subs: MMUNotifierSubscriptions, range: MmuNotifierRange) -> bool:
    """``mn_itree_invalidate``: call the overlapping interval subscriptions. False = would block."""
    k.point("mmu_notifier_itree_start", subs.oid, True, range.event.value)
    subs.active_invalidate_ranges += 1
    hit = subs.overlapping(range.start, range.end)
    if not hit:
        return True
    subs.invalidate_seq |= 1
    cur_seq = subs.invalidate_seq
    for isub in hit:
        if not _call_interval(k, isub, range, cur_seq):
            if range.blockable:
                _warn(k, "mmu_interval_notifier invalidate", range, type(isub.ops).__name__)
                continue
            _itree_end(k, subs)
            return False
    return True


def _enter_nb(k: Kernel, range: MmuNotifierRange) -> None:
    """``non_block_start`` around a callback of a non-blockable range (R4)."""
    if not range.blockable:
        k.atomic_enter("non_block", NON_BLOCK)


def _exit_nb(k: Kernel, range: MmuNotifierRange) -> None:
    if not range.blockable:
        k.atomic_exit("non_block", NON_BLOCK)


def _call_interval(k: Kernel, isub: MMUIntervalNotifier, range: MmuNotifierRange, cur_seq: int) -> bool:
    _enter_nb(k, range)
    try:
        return bool(isub.ops.invalidate(isub, range, cur_seq))
    finally:
        _exit_nb(k, range)


def _itree_end(k: Kernel, subs: MMUNotifierSubscriptions) -> None:
    """``mn_itree_inv_end``: the last active range of an odd period makes it even (R5)."""
    k.point("mmu_notifier_itree_end", subs.oid, True)
    subs.active_invalidate_ranges -= 1
    if subs.active_invalidate_ranges < 0:
        raise UsageError("invalidate_range_end without a matching invalidate_range_start")
    if subs.active_invalidate_ranges or not subs.is_invalidating:
        return
    subs.invalidate_seq += 1
    deferred, subs.deferred = subs.deferred, []
    for insert, isub in deferred:
        if insert:
            subs.intervals.append(isub)
            isub.in_tree = True
        else:
            subs.intervals.remove(isub)
            isub.in_tree = False
    subs.wq.wake_up_all()


def _hlist_start(k: Kernel, subs: MMUNotifierSubscriptions, range: MmuNotifierRange) -> bool:
    """``mn_hlist_invalidate_range_start``: the classic subscribers. False = one refused (R4)."""
    done: list[MMUNotifier] = []
    # The classic list, read under SRCU: ordered with register / release (their writes).
    k.event("mmu_notifier_invalidate_range_start", subs.oid, False)
    for sub in list(subs.subscribers):
        refused = False
        _enter_nb(k, range)
        try:
            sub.ops.invalidate_range_start(sub, range)
        except EAGAIN:
            refused = True
        finally:
            _exit_nb(k, range)
        if refused and range.blockable:
            _warn(k, "invalidate_range_start", range, type(sub.ops).__name__)
        elif refused:
            # R4: end the subscribers that already started, then report the failure
            # (R9: before 2021, nobody ended them).
            if subs.paired_end:
                for ok in done:
                    ok.ops.invalidate_range_end(ok, range)
            return False
        done.append(sub)
    return True


#: The largest user address the model accepts (a 57-bit address space).
TASK_SIZE = 1 << 57


class MMUIntervalNotifierOps:
    """``struct mmu_interval_notifier_ops`` (extension contract).

    ``invalidate(sub, range, cur_seq) -> bool``: called for every
    overlapping invalidation. Must, under the driver's notifier lock, call
    ``sub.set_seq(cur_seq)`` and make sure the device no longer uses the
    range when it returns True. May sleep only if ``range.blockable``;
    otherwise return False instead of sleeping (R4).
    Must never allocate with direct reclaim, remove the subscription, or
    call ``read_begin``.
    """

    def invalidate(self, sub: MMUIntervalNotifier, range: MMUNotifierRange, cur_seq: int) -> bool:
        raise NotImplementedError(f"{type(self).__name__} must implement invalidate(sub, range, cur_seq)")


class MMUIntervalNotifier:
    """``struct mmu_interval_notifier``: one watched interval of one mm.

    Create with :meth:`insert` (``mmu_interval_notifier_insert``). State:
    ``invalidate_seq`` (the interval's sequence, R11/R14) and ``in_tree``.
    """

    __slots__ = ("end", "in_tree", "invalidate_seq", "k", "mm", "oid", "ops", "removed", "start", "subs")

    def __init__(
        self, mm: Any, start: int, end: int, ops: MMUIntervalNotifierOps, subs: MMUNotifierSubscriptions
    ) -> None:
        self.k = current_kernel()
        self.oid = self.k.new_oid()
        self.mm = mm
        self.start = start
        self.end = end
        self.ops = ops
        self.subs = subs
        self.invalidate_seq = 0
        self.in_tree = False
        self.removed = False

    @classmethod
    def insert(cls, mm: Any, start: int, length: int, ops: MMUIntervalNotifierOps) -> MMUIntervalNotifier:
        """``mmu_interval_notifier_insert`` (R11)."""
        k = current_kernel()
        if length <= 0 or start < 0 or start + length > TASK_SIZE:
            raise EINVAL(f"mmu_interval_notifier_insert: bad interval start={start:#x} length={length:#x}")
        subs = subscriptions(mm, create=True, k=k)
        assert subs is not None
        if getattr(mm, "dead", False):
            raise UsageError("mmu_interval_notifier_insert on an mm that was already torn down")
        k.might_sleep("mmu_interval_notifier_insert")
        sub = cls(mm, start, start + length, ops, subs)
        k.point("mmu_interval_notifier_insert", subs.oid, True, f"[{start:#x}, {start + length:#x})")
        subs.has_itree = True
        if subs.active_invalidate_ranges:
            if subs.is_invalidating:
                subs.deferred.append((True, sub))
            else:
                subs.invalidate_seq |= 1
                subs.intervals.append(sub)
                sub.in_tree = True
            sub.invalidate_seq = subs.invalidate_seq
        else:
            sub.invalidate_seq = subs.invalidate_seq - 1
            subs.intervals.append(sub)
            sub.in_tree = True
        return sub

    def read_begin(self) -> int:
        """``mmu_interval_read_begin`` (R12): a sequence to check with :meth:`read_retry`."""
        k = self.k
        subs = self.subs
        k.might_sleep("mmu_interval_read_begin")
        k.point("mmu_interval_read_begin", self.oid, False)
        k.event("mmu_interval_read_begin", subs.oid, False)  # subscriptions->invalidate_seq, under its lock
        seq = self.invalidate_seq
        _wait_for_sequence(subs, seq if seq == subs.invalidate_seq else None)
        return seq

    def read_retry(self, seq: int, lock: Any = None) -> bool:
        """``mmu_interval_read_retry`` (R13): did an invalidation collide since ``read_begin``?

        ``lock`` is the driver's notifier lock; it must be held (the kernel
        documents the requirement; the model checks it).
        """
        k = self.k
        if lock is not None:
            dep_map = getattr(lock, "dep_map", lock)
            if not k.lockdep.is_held(dep_map):
                k.report(
                    "assertion",
                    "WARNING: mmu_interval_read_retry called without the notifier lock",
                    details={"lock": dep_map.name, "interval": f"[{self.start:#x}, {self.end:#x})"},
                    rule="mmu_notifier R13: read_retry under the lock that invalidate holds for set_seq",
                    signature=f"read-retry-unlocked:{dep_map.name}",
                )
        k.point("mmu_interval_read_retry", self.oid, False)
        return self.invalidate_seq != seq

    def check_retry(self, seq: int) -> bool:
        """``mmu_interval_check_retry``: lockless and advisory (True is reliable, False is not)."""
        self.k.point("mmu_interval_check_retry", self.oid, False)
        return self.invalidate_seq != seq

    def set_seq(self, cur_seq: int) -> None:
        """``mmu_interval_set_seq`` (R14): from ``invalidate``, under the driver's notifier lock."""
        k = self.k
        if not cur_seq & 1:
            raise UsageError(f"mmu_interval_set_seq with an even sequence {cur_seq}: pass invalidate()'s cur_seq")
        k.point("mmu_interval_set_seq", self.oid, True)
        self.invalidate_seq = cur_seq

    def remove(self) -> None:
        """``mmu_interval_notifier_remove`` (R15)."""
        k = self.k
        subs = self.subs
        if self.removed:
            raise UsageError("mmu_interval_notifier_remove of an interval that was already removed")
        k.might_sleep("mmu_interval_notifier_remove")
        k.point("mmu_interval_notifier_remove", subs.oid, True)
        self.removed = True
        seq = 0
        if subs.is_invalidating:
            if not self.in_tree:
                subs.deferred = [(ins, s) for ins, s in subs.deferred if s is not self]
            else:
                subs.deferred.append((False, self))
                seq = subs.invalidate_seq
        else:
            subs.intervals.remove(self)
            self.in_tree = False
        _wait_for_sequence(subs, seq or None)

    def __repr__(self) -> str:
        return f"<MMUIntervalNotifier #{self.oid} [{self.start:#x}, {self.end:#x}) seq={self.invalidate_seq}>"


def _wait_for_sequence(subs: MMUNotifierSubscriptions, seq: int | None) -> None:
    """What ``read_begin`` and ``remove`` share (R12, R15): touch the
    ``mmu_notifier_invalidate_range_start`` map (``lock_map_acquire`` /
    ``lock_map_release``), then, when ``seq`` is the invalidation in progress,
    ``wait_event(subscriptions->wq, invalidate_seq != seq)``."""
    m = mmu_notifier_map()
    m.acquire()
    m.release()
    if seq is not None:
        subs.wq.wait_event(lambda: subs.invalidate_seq != seq, reads=subs.oid)
