"""Object lifetimes: ``kref``, ``refcount_t``, frees, use-after-free and leaks.

Models ``include/linux/kref.h``, ``lib/refcount.c`` (``refcount_warn_saturate``),
``kfree`` / ``kmem_cache_free`` of objects whose last reference was put, and
the two debugging tools that watch them: KASAN ("BUG: KASAN:
slab-use-after-free in ...") and kmemleak (objects never freed).

Rules:

* L1 (refcount_t): a count starts at 1. An increment of a count at 0 is
  "refcount_t: addition on 0; use-after-free." and a decrement below 0
  "refcount_t: underflow; use-after-free."; both are ``use-after-free``
  findings and leave the count saturated, as the kernel does. A count that
  reaches ``REFCOUNT_SATURATED`` stays there ("refcount_t: saturated;
  leaking memory.", a ``leak``): it is never freed.
* L2 (kref): ``put`` calls the release callback exactly once, when the count
  drops to zero; ``get_unless_zero`` takes a reference only while the count
  is not zero (the lookup under RCU or a lock of an object that may be on its
  way out).
* L3 (free): freeing a tracked object records the thread that freed it and
  its scenario-level stack. The object's id and the ids of the state embedded
  in it (its reference count, a lock it owns) are *freed ids* from then on.
* L3a (kfree_rcu): an object freed with ``kfree_rcu`` (a fence's default
  ``dma_fence_free``) stays valid memory for every RCU read section in
  progress at the free: a thread still inside the same section touches it
  legally (it reads a count of zero and backs off); anyone else, or that
  thread in a later section, touches freed memory.
* L4 (use-after-free): every declared access of a freed id (a scheduling
  point or an event: ``kernel/accesses.py`` A1, the declarations DPOR relies
  on) and the explicit checks of the get, put, lock and signal paths report a
  ``use-after-free`` (error): the object, the operation, the thread that
  touched it with its stack, and the thread that freed it with its stack.
  One report per object and execution (its first bad touch).
* L5 (type-safe by RCU): an object of a ``SLAB_TYPESAFE_BY_RCU`` cache stays
  an object of its type after it is freed: reading it (``get_unless_zero``
  under ``rcu_read_lock``) is legal and fails on a count of zero, and the next
  allocation from the cache may *reuse* it for a new object while a stale
  pointer still refers to it. Its freed state is not watched by L4's access
  hook; the explicit checks (put, signal, lock of a freed, not yet reused,
  object) still apply.
* L6 (leak): when an execution completes (every thread exited), every
  tracked object still alive is a ``leak`` naming the object, its count and
  where every reference of it was taken (allocation and gets, in order, the
  last 16): which reference a put dropped is unknowable, so the leaked one is
  among them. Only objects whose lifetime is tracked
  (``track=True``, or allocated from a :class:`KmemCache` with leak checking)
  are checked: the model's other objects are not reference counted.
  An execution that ends with threads that cannot finish (a ``deadlock``,
  a hung task) is not checked: its blocked threads still hold their
  references, and hold pointers to the objects, as kmemleak would find on
  their stacks -- it reports an object only once nothing refers to it. The
  kernel's report there is the hang itself, which the model reports.
* L7 (cost): nothing is watched until the first tracked free of an execution;
  from then on every scheduling point and event does one dictionary lookup.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from .findings import ThreadInfo
from .runtime import Kernel, current_kernel, register_extension
from .stack import Frame, call_site, scenario_stack
from .trace import refcount_oid

#: ``REFCOUNT_SATURATED`` (``INT_MIN / 2``, as an unsigned count): a saturated count never moves.
REFCOUNT_SATURATED = 0xC0000000
#: Operations whose declared object is a thread id, not an object id (L4 ignores them).
_THREAD_OPS = frozenset({"spawn", "join", "signal"})
#: References whose sites are remembered per tracked object (L6): the oldest are dropped beyond it.
_MAX_SITES = 16


#: The per-thread keys of locking/rcu.py (``KThread.data``): nesting depth and outer-section count.
_RCU_NEST = "rcu_nesting"
_RCU_SECTION = "rcu_section"


class FreeRecord:
    """Who freed an object, and where (L3); for a ``kfree_rcu``, the read sections it waits for (L3a)."""

    __slots__ = ("name", "op", "rcu_readers", "stack", "step", "thread", "tid")

    def __init__(self, name: str, op: str, tid: int, thread: str, stack: tuple[Frame, ...], step: int) -> None:
        self.name = name
        self.op = op
        self.tid = tid
        self.thread = thread
        self.stack = stack
        self.step = step
        #: tid -> the RCU read section each thread was inside at a ``kfree_rcu`` (None: freed at once).
        self.rcu_readers: dict[int, int] | None = None


class Lifetimes:
    """Per-execution state of the lifetime room (``k.ext["lifetime"]``)."""

    __slots__ = ("freed", "k", "live")
    #: Checker bookkeeping, not model state (accesses A3).
    __untracked__ = "*"

    def __init__(self, k: Kernel) -> None:
        self.k = k
        #: Freed ids (the object and its embedded state) -> the free (L3).
        self.freed: dict[int, FreeRecord] = {}
        #: Tracked live objects in allocation order (L6): oid -> the object.
        self.live: dict[int, Tracked] = {}

    # ------------------------------------------------------------------ L3/L4

    def free(self, obj: Tracked, op: str, watch: bool = True, rcu: bool = False) -> FreeRecord:
        """Record ``obj`` freed by the current thread (L3); watch its ids unless ``watch`` is False (L5).
        ``rcu``: ``kfree_rcu``, the memory stays valid for the read sections in progress (L3a)."""
        k = self.k
        t = k._current
        rec = FreeRecord(
            obj.lifetime_name(), op, t.tid if t is not None else -1, t.name if t is not None else "<timer>",
            scenario_stack(), k.steps,
        )
        if rcu:
            rec.rcu_readers = {r.tid: r.data.get(_RCU_SECTION, 0) for r in k._threads if r.data.get(_RCU_NEST)}
        obj.freed = rec
        self.live.pop(obj.oid, None)
        if watch:
            for oid in obj.lifetime_ids():
                self.freed[oid] = rec
            if k.freed_oids is None:
                k.freed_oids = self.freed
                k.uaf_hook = self.access
        return rec

    def reuse(self, obj: Tracked) -> None:
        """A type-safe-by-RCU object handed out again (L5): it is no longer free."""
        for oid in obj.lifetime_ids():
            self.freed.pop(oid, None)
        obj.freed = None

    def access(self, op: str, oid: int) -> None:
        """The access hook (L4): the current thread declared ``op`` on a freed id."""
        rec = self.freed.get(oid)
        if rec is not None and op not in _THREAD_OPS:
            self.report(rec, op)

    def report(self, rec: FreeRecord, op: str) -> bool:
        """A ``use-after-free`` finding: ``rec``'s object touched by ``op`` (L4). False (nothing
        reported) for a reader still inside the RCU section a ``kfree_rcu`` waits for (L3a)."""
        k = self.k
        readers = rec.rcu_readers
        if readers:
            t = k._current
            if t is not None and t.data.get(_RCU_NEST) and readers.get(t.tid) == t.data.get(_RCU_SECTION, 0):
                return False
        sig = f"use-after-free:{rec.name}"
        if not k.wants_text(sig):
            k.report("use-after-free", f"BUG: KASAN: slab-use-after-free in {op}", signature=sig,
                     details={"object": rec.name, "op": op}, threads=())
            return True
        t = k._current
        toucher = k.thread_info(t) if t is not None else ThreadInfo(-1, "<timer>", ())
        freer = ThreadInfo(rec.tid, rec.thread, rec.stack)
        lines = [
            "==================================================================",
            f"BUG: KASAN: slab-use-after-free in {op}",
            f"Access of {rec.name} by task {toucher.name}/{toucher.tid}:",
            *(f"  {fr}" for fr in toucher.stack),
            "",
            f"Freed by task {rec.thread}/{rec.tid} ({rec.op}):",
            *(f"  {fr}" for fr in rec.stack),
            "==================================================================",
        ]
        k.report(
            "use-after-free",
            f"BUG: KASAN: slab-use-after-free in {op}",
            details={"object": rec.name, "op": op, "freed_by": rec.thread, "freed_in": rec.op,
                     "freed_at_step": rec.step, "touched_by": toucher.name},
            rule="lifetime L4: a freed object is never touched",
            signature=sig,
            text="\n".join(lines),
            threads=(toucher, freer),
        )
        return True

    # ------------------------------------------------------------------ L6

    def track(self, obj: Tracked) -> None:
        self.live[obj.oid] = obj

    def check_leaks(self) -> None:
        """L6, at the end of a completed execution."""
        k = self.k
        for obj in list(self.live.values()):
            if obj.freed is not None:
                continue
            name = obj.lifetime_name()
            sites = obj.ref_sites or []
            lines = [f"unreferenced object {name} (refcount {obj.lifetime_count()}):",
                     "  references taken at (every get; the leaked one is among them):"]
            for who, stack in sites:
                lines.append(f"    by {who}: " + (str(stack[0]) if stack else "?"))
            k.report(
                "leak",
                f"kmemleak: unreferenced object {name}",
                details={"object": name, "refcount": obj.lifetime_count(),
                         "taken_by": [who for who, _ in sites],
                         "taken_at": [str(s[0]) if s else "?" for _, s in sites]},
                rule="lifetime L6: every reference is dropped",
                signature=f"leak:{name}",
                text="\n".join(lines),
                threads=(),
            )


class Tracked(Protocol):
    """What the lifetime room needs of an object it tracks (a structural protocol).

    ``oid`` is the object's id, ``freed`` its :class:`FreeRecord` once freed,
    ``ref_sites`` the sites of its counted references (L6) or None when its
    leaks are not checked.
    """

    oid: int
    freed: FreeRecord | None
    ref_sites: list[tuple[str, tuple[Frame, ...]]] | None

    def lifetime_name(self) -> str:
        """The object as reports name it (stable across executions)."""

    def lifetime_ids(self) -> tuple[int, ...]:
        """The ids that are freed with it (L3): its own, its reference count's, its own locks'."""

    def lifetime_count(self) -> int:
        """Its reference count (for leak reports)."""


def _setup(k: Kernel) -> None:
    st = Lifetimes(k)
    k.ext["lifetime"] = st
    k.at_exit.append(st.check_leaks)


def _reset(k: Kernel, st: Lifetimes) -> None:
    """A reused Kernel's next execution (runtime R13): nothing freed, nothing live."""
    st.freed = {}
    st.live = {}


register_extension("lifetime", _setup, _reset)


def lifetimes(k: Kernel | None = None) -> Lifetimes:
    """The lifetime state of ``k`` (the running kernel by default)."""
    k = k or current_kernel()
    st: Lifetimes | None = k.ext.get("lifetime")
    if st is None:  # a Kernel started before this module was imported
        _setup(k)
        st = k.ext["lifetime"]
    return st


def note_ref(obj: Tracked, k: Kernel) -> None:
    """Remember where a reference of a leak-checked object was taken (L6)."""
    sites = obj.ref_sites
    if sites is None:
        return
    t = k._current
    site = call_site()  # the innermost scenario frame only: cached per call site, cheap on the get path
    sites.append((t.name if t is not None else "<timer>", (site,) if site is not None else ()))
    if len(sites) > _MAX_SITES:
        del sites[0]


def drop_ref(obj: Tracked, k: Kernel) -> None:
    """A reference put (L6). Which reference a put drops is unknowable (references are handed
    from thread to thread), so every site stays listed: the leaked one is among them."""


class Kref:
    """``struct kref`` on an object of the model: ``kref_init`` / ``kref_get`` / ``kref_put``.

    ``release(obj)`` runs exactly once, at the put that reaches zero (L2);
    after it the object is freed (L3) unless ``free=False`` (the release
    callback then owns the memory, e.g. hands it back to a cache). With
    ``track=True`` a reference still counted at the end of the execution is
    a ``leak`` (L6).
    """

    __slots__ = ("count", "freed", "k", "name", "oid", "ref_sites", "release")
    __untracked__ = ("freed", "ref_sites", "name")

    def __init__(self, name: str, release: Callable[[Kref], Any] | None = None, *, track: bool = False) -> None:
        """``kref_init``: a count of 1."""
        k = current_kernel()
        self.k = k
        self.oid = k.new_oid()
        self.name = name
        self.count = 1
        self.release = release
        self.freed: FreeRecord | None = None
        self.ref_sites: list[tuple[str, tuple[Frame, ...]]] | None = None
        if track:
            self.ref_sites = []
            note_ref(self, k)
            lifetimes(k).track(self)

    def lifetime_name(self) -> str:
        return f"{self.name}#{self.oid}"

    def lifetime_ids(self) -> tuple[int, ...]:
        return (self.oid, refcount_oid(self.oid))

    def lifetime_count(self) -> int:
        return self.count

    def read(self) -> int:
        """``kref_read``."""
        self.k.point("kref_read", self.oid, False)
        return self.count

    def get(self) -> Kref:
        """``kref_get``: one more reference (L1: an increment from 0 is a use-after-free)."""
        k = self.k
        k.point("kref_get", refcount_oid(self.oid), False)
        if self.count == 0:
            # An increment from zero saturates the count (L1): it writes it (kernel/counter.py C3).
            k.event("kref_get", refcount_oid(self.oid), True)
        if not refcount_inc(self, "kref_get"):
            return self
        note_ref(self, k)
        return self

    def get_unless_zero(self) -> bool:
        """``kref_get_unless_zero``: True and one more reference, or False when the count is 0 (L2)."""
        k = self.k
        k.point("kref_get_unless_zero", refcount_oid(self.oid), False)
        if self.count == 0:
            return False
        if self.count != REFCOUNT_SATURATED:
            self.count += 1
        note_ref(self, k)
        return True

    def put(self) -> bool:
        """``kref_put``: drop a reference; True when it was the last (the release ran, L2)."""
        k = self.k
        # Every put writes the count (unlike dma_fence's non-releasing puts, declared reads): which of
        # two puts releases depends on their order, and optimal DPOR then runs no redundant execution.
        k.point("kref_put", refcount_oid(self.oid), True)
        if not refcount_dec(self, "kref_put"):
            return False
        drop_ref(self, k)
        if self.count:
            return False
        if self.release is not None:
            self.release(self)
        lifetimes(k).free(self, "kref_put")
        return True


def refcount_inc(obj: Kref, op: str) -> bool:
    """``refcount_inc`` on ``obj.count`` (L1). False when the increment was refused (0 or saturated)."""
    c = obj.count
    if c == REFCOUNT_SATURATED:
        return False
    if c == 0:
        obj.count = REFCOUNT_SATURATED
        _refcount_warn(obj, op, "refcount_t: addition on 0; use-after-free.")
        return False
    obj.count = c + 1
    if obj.count == REFCOUNT_SATURATED:
        obj.k.report("leak", "refcount_t: saturated; leaking memory.",
                     details={"object": obj.lifetime_name()}, rule="lifetime L1: refcount_t saturates",
                     signature=f"refcount-saturated:{obj.lifetime_name()}")
    return True


def refcount_dec(obj: Kref, op: str) -> bool:
    """``refcount_dec_and_test``'s decrement (L1). False when refused (saturated, or freed/underflow)."""
    rec = obj.freed
    if rec is not None and lifetimes(obj.k).report(rec, op):
        return False
    c = obj.count
    if c == REFCOUNT_SATURATED:
        return False
    if c <= 0:
        obj.count = REFCOUNT_SATURATED
        _refcount_warn(obj, op, "refcount_t: underflow; use-after-free.")
        return False
    obj.count = c - 1
    return True


def _refcount_warn(obj: Tracked, op: str, title: str) -> None:
    """``refcount_warn_saturate``: the WARN of L1, a ``use-after-free`` finding."""
    name = obj.lifetime_name()
    obj_k: Kernel = getattr(obj, "k", None) or current_kernel()
    obj_k.report(
        "use-after-free",
        title,
        details={"object": name, "op": op},
        rule="lifetime L1: a reference count never goes through zero",
        signature=f"refcount:{title}:{name}",
    )


class KmemCache:
    """``struct kmem_cache`` (``kmem_cache_create(name, ..., flags)``): where tracked objects come from.

    With ``typesafe_by_rcu`` (``SLAB_TYPESAFE_BY_RCU``) a freed object goes back
    on the cache's free list and the next allocation reuses it, last freed
    first as SLUB's per-cpu free list does (L5). Objects of a cache are
    leak-checked unless ``leak_check=False`` (L6). Subclasses build the object
    (:meth:`take` gives them a freed one to reinitialise, or None).
    """

    __slots__ = ("free_list", "k", "leak_check", "name", "oid", "typesafe_by_rcu")
    #: The free list is the allocator's, declared through the cache's own id.
    __untracked__ = ()

    def __init__(self, name: str, *, typesafe_by_rcu: bool = False, leak_check: bool = True) -> None:
        k = current_kernel()
        self.k = k
        self.oid = k.new_oid()
        self.name = name
        self.typesafe_by_rcu = typesafe_by_rcu
        self.leak_check = leak_check
        self.free_list: list[Tracked] = []

    def take(self) -> Tracked | None:
        """The freed object the next ``kmem_cache_alloc`` reuses (type-safe caches only), or None.

        One scheduling point: the allocation writes the cache (its free list)."""
        k = self.k
        k.point("kmem_cache_alloc", self.oid, True, self.name)
        if not self.free_list:
            return None
        obj = self.free_list.pop()
        lifetimes(k).reuse(obj)
        for oid in obj.lifetime_ids():  # the reinitialisation writes the recycled memory (L5)
            k.event("kmem_cache_alloc", oid, True, self.name)
        return obj

    def allocated(self, obj: Tracked) -> None:
        """Start tracking ``obj``, just allocated from this cache (L6)."""
        if self.leak_check:
            obj.ref_sites = []
            note_ref(obj, self.k)
            lifetimes(self.k).track(obj)

    def free(self, obj: Tracked) -> None:
        """``kmem_cache_free`` (L3, L5): writes the cache (its free list)."""
        self.k.event("kmem_cache_free", self.oid, True, self.name)
        lifetimes(self.k).free(obj, f"kmem_cache_free({self.name})", watch=not self.typesafe_by_rcu)
        if self.typesafe_by_rcu:
            self.free_list.append(obj)

    def __repr__(self) -> str:
        return f"<KmemCache {self.name}{' TYPESAFE_BY_RCU' if self.typesafe_by_rcu else ''}>"
