"""The lock-dependency validator.

Models ``kernel/locking/lockdep.c`` (6.12, with the 2020 read/recursive-read
rework): lock classes, the per-thread held-lock stack with where each lock
was taken, a graph of dependencies between classes checked for cycles when
it grows, irq-safe/irq-unsafe usage, and the reports that come out of it.
It is a :class:`~dmabufsim.kernel.held.LockTracker` installed per execution
(``k.lockdep``) when ``Config.lockdep`` is true, by the boot of each
execution in ``lockdep_priming.py``; with ``Config.prime_lockdep`` the graph
first learns the orders of ``dma_resv_lockdep()`` there, through
:meth:`Lockdep.boot_acquire` / :meth:`Lockdep.boot_release` on a
:class:`BootThread`.

Rules:

* R1 (classes): locks initialised with the same name/key share a class
  (see ``lockdep_graph`` R1); ``lock(subclass=N)`` (``*_nested``) uses the
  class ``name/N``.
* R2 (dependencies): a non-trylock acquisition of B records ``A -> B`` for
  the innermost held lock A that is not a trylock, and for every trylock
  held above it (``check_prevs_add``). A trylock records no edge into
  itself and is not checked for recursion, but later acquisitions depend
  on it.
* R3 (recursion): taking a class already held is ``recursive-locking``
  ("possible recursive locking detected") unless the new acquisition is a
  recursive read of a read-held class, or a lock whose ``nest_lock`` was
  taken *before* the held one of that class (``check_deadlock``): then it
  adds no dependencies at all (many ww_mutexes under one acquire context;
  the context is what appears in chains).
* R4 (nest_lock): acquiring with a ``nest_lock`` the thread does not hold is
  reported ("Nested lock was not taken").
* R5 (cycles): a new edge that closes a strong cycle (``lockdep_graph``
  R3) is ``circular-locking`` ("possible circular locking dependency
  detected"), once per distinct cycle per execution, with ``details``
  ``chain`` (class names from the lock being taken along the existing
  dependencies to the held lock; the new edge closes it) and ``new_edge``
  (held, taken). The execution goes on (unless ``stop_on_first``).
* R6 (chain cache): the classes held plus the new one (with read, trylock
  and nest flags) hash to a chain key; a chain validated once is not
  validated again (``lookup_chain_cache_add``), so the cost is paid only
  while the graph grows.
* R7 (irq safety): a lock taken in hardirq context is irq-safe, one taken
  with interrupts enabled irq-unsafe, and so is every lock still held when
  interrupts are enabled again (``hardirqs_on``). A class that is both is
  ``recursive-locking`` ("inconsistent lock state": the interrupt can
  arrive while the lock is held); an irq-safe class ordered before an
  irq-unsafe one is ``circular-locking`` ("HARDIRQ-safe -> HARDIRQ-unsafe
  lock order detected" when the edge is new, "possible irq lock inversion
  dependency detected" when a usage is). A read-safe, read-unsafe pair is
  fine. The same rules hold, separately, for the softirq state: a lock taken
  in a softirq handler is softirq-safe, one taken with softirqs enabled
  (bottom halves on, hardirqs on) softirq-unsafe, and so is every lock held
  when softirqs come back on (``softirqs_on``, or ``hardirqs_on`` with bottom
  halves on); those reports name SOFTIRQ.
* R8 (balance): releasing a lock not held is reported by the tracker
  ("bad unlock balance"); a thread exiting with locks held is a ``leak``;
  a thread still holding locks when the execution ends is a ``leak``
  ("lock held when returning to user space"); freeing or re-initialising
  a held lock (:meth:`Lockdep.debug_check_no_locks_freed`) is reported
  ("held lock freed").
"""

from __future__ import annotations

from types import CodeType
from typing import TYPE_CHECKING, Any

from ..kernel.errors import UsageError
from ..kernel.held import HeldLock, LockTracker
from ..kernel.runtime import Kernel
from ..kernel.stack import Frame, call_site, scenario_stack
from . import lockdep_report as rep
from .lockdep_graph import (
    DEP_ALL,
    DEP_EN,
    DEP_ER,
    DEP_SN,
    ENABLED_HARDIRQ,
    ENABLED_HARDIRQ_READ,
    ENABLED_SOFTIRQ,
    ENABLED_SOFTIRQ_READ,
    EXCLUSIVE_USAGE,
    STATE_NAMES,
    STATE_SHIFT,
    USED_IN_HARDIRQ,
    USED_IN_HARDIRQ_READ,
    USED_IN_SOFTIRQ,
    USED_IN_SOFTIRQ_READ,
    Edge,
    LockClass,
    LockGraph,
    calc_dep,
    state_of,
)

if TYPE_CHECKING:
    from ..kernel.thread import KThread

_MASK = (1 << 64) - 1
#: FNV-1a 64-bit prime: the chain key mixes each held lock's id into the previous key.
_PRIME = 0x100000001B3
#: FNV-1a 64-bit offset basis: the key of an empty held stack.
_BASIS = 0xCBF29CE484222325

TITLE_CIRCULAR = "WARNING: possible circular locking dependency detected"
TITLE_RECURSIVE = "WARNING: possible recursive locking detected"
TITLE_INCONSISTENT = "WARNING: inconsistent lock state"
TITLE_BAD_IRQ = "WARNING: HARDIRQ-safe -> HARDIRQ-unsafe lock order detected"
TITLE_BAD_SOFTIRQ = "WARNING: SOFTIRQ-safe -> SOFTIRQ-unsafe lock order detected"
TITLE_IRQ_INVERSION = "WARNING: possible irq lock inversion dependency detected"
TITLE_NEST_NOT_HELD = "WARNING: Nested lock was not taken"
TITLE_HELD_FREED = "WARNING: held lock freed!"
TITLE_HELD_AT_END = "WARNING: lock held when returning to user space!"

_USED_IN = USED_IN_HARDIRQ | USED_IN_HARDIRQ_READ | USED_IN_SOFTIRQ | USED_IN_SOFTIRQ_READ
_new = object.__new__
#: What a plain acquisition in process context marks: taken with hardirqs and softirqs on.
_ENABLED_BOTH = ENABLED_HARDIRQ | ENABLED_SOFTIRQ
assert _ENABLED_BOTH == 68  # lock_acquire_plain's fast path tests this constant


class BootThread:
    """The boot CPU running initcalls (``swapper/0``): process context, irqs on.

    An initcall that takes locks at boot (``dma_resv_lockdep``) runs on it,
    through :meth:`Lockdep.boot_acquire`: the dependencies it records carry
    ``stack`` (the initcall's own site) and execution number 0, so reports
    say the order was taught at boot.
    """

    __slots__ = ("atomic", "held", "in_irq", "name", "stack", "tid")

    def __init__(self, stack: tuple[Frame, ...]) -> None:
        self.name = "swapper"
        self.tid = 0
        self.in_irq = False
        self.atomic: list[Any] = []
        self.held: list[Any] = []
        self.stack = stack


class LockdepHeld(HeldLock):
    """A held-lock entry with the validator's extra state (``struct held_lock``)."""

    __slots__ = ("chain_key", "cls", "depth", "hid")

    cls: LockClass
    #: Chain key of the held stack up to and including this entry (R6).
    chain_key: int
    #: ``hlock_id``: class, read, trylock and nest flags.
    hid: int
    #: Index in the thread's held stack when pushed (re-keying after an out-of-order release).
    depth: int


def _irqs_on(t: Any) -> bool:
    if t.in_irq:
        return False
    for r in t.atomic:  # a loop, not all(<genexpr>): this runs for every acquisition in atomic context
        what = r.what
        if what == "irqs_disabled" or what == "hardirq":
            return False
    return True


def _softirqs_on(t: Any) -> bool:
    """``curr->softirqs_enabled``: not in an interrupt or softirq, bottom halves not disabled."""
    if t.in_irq or getattr(t, "in_softirq", False):
        return False
    for r in t.atomic:
        what = r.what
        if what == "bh_disabled" or what == "softirq" or what == "hardirq":
            return False
    return True


def _state_line(t: Any) -> str:
    """The ``[HC0[0]:SC1[1]:HE1:SE0]`` context of a report's thread."""
    return rep.irq_state(t.in_irq, bool(getattr(t, "in_softirq", False)), _irqs_on(t), _softirqs_on(t))


RULE_CIRCULAR = "lockdep R5: a new lock dependency closes a cycle"


#: The usage bits in the order ``mark_usage`` sets them (and conflicts are named).
_MARK_ORDER = (USED_IN_HARDIRQ, USED_IN_HARDIRQ_READ, USED_IN_SOFTIRQ, USED_IN_SOFTIRQ_READ,
               ENABLED_HARDIRQ, ENABLED_HARDIRQ_READ, ENABLED_SOFTIRQ, ENABLED_SOFTIRQ_READ)


def _cycle_signature(chain: tuple[str, ...]) -> str:
    n = len(chain)
    best = min(tuple(chain[i:] + chain[:i]) for i in range(n)) if n else ()
    return "circular-locking:" + "->".join(best)


class Lockdep(LockTracker):
    """The lock-dependency validator (``CONFIG_PROVE_LOCKING``), one per execution.

    ``Lockdep(k, graph)`` validates every acquisition against ``graph``
    (a fresh :class:`LockGraph` unless one is passed to keep across
    executions). ``to_dot()`` exports the graph.
    """

    def __init__(self, kernel: Kernel, graph: LockGraph | None = None) -> None:
        super().__init__(kernel)
        self.graph = graph if graph is not None else LockGraph()
        self.graph.executions += 1
        #: This execution's number in the graph's life (0 is the boot-time priming).
        self.execution = self.graph.executions
        self._cls: dict[Any, LockClass] = {}

    # ------------------------------------------------------------------ acquire

    def _acquire(
        self,
        t: Any,
        map: Any,
        read: int,
        trylock: bool,
        subclass: int,
        nest_lock: Any,
        site: Frame | CodeType | None,
        lasti: int = -1,
    ) -> LockdepHeld:
        held = t.held
        if nest_lock is not None:
            nest_lock = getattr(nest_lock, "dep_map", nest_lock)
        cls = self._cls.get(map) if not subclass else None
        if cls is None:
            cls = self._class_of(map, subclass)
        hid = ((cls.idx + 1) << 4) | (read << 2) | (2 if trylock else 0) | (0 if nest_lock is None else 1)
        # LockdepHeld(map, read, trylock, subclass, nest_lock, site, lasti) without the __init__
        # call (a third of an acquisition): keep in step with HeldLock.__init__.
        hl = _new(LockdepHeld)
        hl.map = map
        hl.read = read
        hl.trylock = trylock
        hl.subclass = subclass
        hl.nest_lock = nest_lock
        hl._site = site
        hl._lasti = lasti
        hl.refcount = 1
        hl.cls = cls
        hl.hid = hid
        hl.chain_key = (((held[-1].chain_key if held else _BASIS) ^ hid) * _PRIME) & _MASK
        hl.depth = len(held)
        # R7: usage bits (mark_usage); sticky, so the check is one AND once set.
        if not t.atomic:  # process context: hardirqs and softirqs on
            bits = (ENABLED_HARDIRQ_READ | ENABLED_SOFTIRQ_READ) if read else _ENABLED_BOTH
            if cls.usage & bits != bits:
                self._mark_usage(t, held, hl, bits)
        else:
            bits = 0
            if not trylock:
                if t.in_irq:
                    bits = USED_IN_HARDIRQ_READ if read else USED_IN_HARDIRQ
                elif getattr(t, "in_softirq", False):
                    bits = USED_IN_SOFTIRQ_READ if read else USED_IN_SOFTIRQ
            if _irqs_on(t):
                bits |= ENABLED_HARDIRQ_READ if read else ENABLED_HARDIRQ
                if _softirqs_on(t):
                    bits |= ENABLED_SOFTIRQ_READ if read else ENABLED_SOFTIRQ
            if cls.usage & bits != bits:
                self._mark_usage(t, held, hl, bits)
        if nest_lock is not None:
            self._check_nest_held(t, held, hl)
        if not trylock:
            g = self.graph
            if hl.chain_key in g.chains:
                g.chain_hits += 1
            elif self._validate(t, held, hl):
                g.chains.add(hl.chain_key)
            else:
                held.append(hl)
                if self.observer is not None:
                    self.observer(t, held)
                return hl
            if hid == cls.hid:  # memo for lock_acquire's fast path
                cls.chained[held[-1].chain_key if held else _BASIS] = hl.chain_key
        held.append(hl)
        if self.observer is not None:
            self.observer(t, held)
        return hl

    def lock_acquire(
        self,
        t: Any,
        map: Any,
        read: int,
        trylock: bool,
        subclass: int,
        nest_lock: Any,
        site: Frame | CodeType | None,
        lasti: int = -1,
    ) -> LockdepHeld:
        """``lock_acquire``: mark usage, validate a new chain (R2-R7), push.

        The inherited ``acquire`` (keyword form, current thread) calls it too.
        Fast path (``lookup_chain_cache`` hit): a plain exclusive acquisition
        with interrupts on, of a class already marked irq-unsafe, that
        completes a chain already validated has nothing to check: push the
        entry. Anything else goes through :meth:`_acquire`.
        """
        if not (read or trylock or subclass or t.atomic or t.in_irq) and nest_lock is None:
            return self.lock_acquire_plain(t, map, site, lasti)
        return self._acquire(t, map, read, trylock, subclass, nest_lock, site, lasti)

    def lock_acquire_plain(self, t: Any, map: Any, site: Frame | CodeType | None, lasti: int) -> LockdepHeld:
        """:meth:`lock_acquire`'s fast path for a caller that guarantees a plain acquisition.

        Exclusive, blocking, subclass 0, no nest lock, ``t`` not atomic and
        not in an interrupt (``LockTracker.lock_acquire_plain``): only the
        class usage and the chain memo are left to check.
        """
        cls = self._cls.get(map)
        if cls is None:  # a map new to this execution (its class usually is not)
            cls = self._class_of(map, 0)
        if cls.usage & 68 == 68:  # _ENABLED_BOTH as a constant (a global load per acquisition)
            held = t.held
            n = len(held)
            key = cls.chained.get(held[-1].chain_key if n else _BASIS)
            if key is not None:
                self.graph.chain_hits += 1
                # LockdepHeld.plain(map, site, lasti) inlined (the call was ~20 ns of the
                # scheduler bench's ~780 ns point), then the validator's fields.
                hl = _new(LockdepHeld)
                hl.map = map
                hl.read = 0
                hl.trylock = False
                hl.subclass = 0
                hl.nest_lock = None
                hl._site = site
                hl._lasti = lasti
                hl.refcount = 1
                hl.cls = cls
                hl.hid = cls.hid
                hl.chain_key = key
                hl.depth = n
                held.append(hl)
                if self.observer is not None:
                    self.observer(t, held)
                return hl
        return self._acquire(t, map, 0, False, 0, None, site, lasti)

    def _class_of(self, map: Any, subclass: int) -> LockClass:
        name = map.name
        cls = self.graph.lock_class(getattr(map, "key", name), subclass, name)
        if not subclass:
            self._cls[map] = cls
        return cls

    def validate(self, t: KThread, hl: HeldLock) -> None:
        """The tracker hook: validate ``hl`` against ``t.held`` (R2-R5)."""
        if not isinstance(hl, LockdepHeld):
            raise UsageError("Lockdep.validate needs an entry made by Lockdep.acquire")
        self._validate(t, t.held, hl)

    def _validate(self, t: Any, held: list[Any], hl: LockdepHeld) -> bool:
        """``validate_chain``: recursion check, then dependencies. True if clean."""
        if not held:
            return True
        cls = hl.cls
        nest_seen = False
        for prev in held:
            if hl.nest_lock is not None and prev.map is hl.nest_lock:
                nest_seen = True
            if prev.cls is not cls:
                continue
            if hl.read == 2 and prev.read:
                continue
            if nest_seen:
                return True  # R3: serialised by the nest lock; no new dependencies.
            self._report_recursive(t, held, prev, hl)
            return False
        ok = True
        for i in range(len(held) - 1, -1, -1):
            prev = held[i]
            if not self._prev_add(t, held, prev, hl):
                ok = False
            if not prev.trylock:
                break
        return ok

    def _prev_add(self, t: Any, held: list[Any], prev: LockdepHeld, nxt: LockdepHeld) -> bool:
        """``check_prev_add``: record ``prev -> nxt`` unless it closes a strong cycle."""
        g = self.graph
        pc, nc = prev.cls, nxt.cls
        dep = calc_dep(prev.read, nxt.read)
        e = pc.after.get(nc.idx)
        if e is not None and (e.dep & dep) == dep:
            return True  # the graph holds no strong cycle (graph R4), so neither does this edge
        path = g.strong_path(nc, nxt.read == 2, pc, prev.read)
        if path is not None:
            self._report_circular(t, held, prev, nxt, path)
            return False
        if not self._check_irq_dependency(t, held, prev, nxt):
            return False
        boot = isinstance(t, BootThread)
        g.add_edge(pc, nc, dep, t.stack if boot else scenario_stack(), t.name, 0 if boot else self.execution)
        return True

    def _stack(self, t: Any) -> tuple[Frame, ...]:
        return t.stack if isinstance(t, BootThread) else scenario_stack()

    def _who(self, t: Any) -> str:
        return f"{t.name}/{t.tid}"

    # ------------------------------------------------------------------ release

    def lock_release(self, t: Any, map: Any) -> bool:
        """``lock_release`` by the running thread ``t``; the innermost lock is the fast path."""
        held = t.held
        if held:
            hl = held[-1]
            if hl.map is map and hl.refcount == 1:
                del held[-1]
                n = len(held)
                if n and held[-1].depth != n - 1:
                    self.on_release(t, hl)
                return True
        return LockTracker.lock_release(self, t, map)

    def on_release(self, t: KThread, hl: HeldLock) -> None:
        """Re-key the entries above a lock released out of order (``reacquire_held_locks``)."""
        held = t.held
        n = len(held)
        if n == 0 or held[-1].depth == n - 1:
            return
        i = 0
        while held[i].depth == i:
            i += 1
        key = held[i - 1].chain_key if i else _BASIS
        for j in range(i, n):
            h = held[j]
            h.depth = j
            h.chain_key = key = ((key ^ h.hid) * _PRIME) & _MASK

    def lock_downgrade(self, map: Any) -> None:
        """``lock_downgrade``: the current thread's write hold of ``map`` becomes a read hold.

        Re-keys the chain from that entry on, so the chain cache sees the new mode.
        """
        held = self.k.current.held
        for i in range(len(held) - 1, -1, -1):
            h = held[i]
            if h.map is map:
                h.read = 1
                h.hid |= 1 << 2
                key = held[i - 1].chain_key if i else _BASIS
                for j in range(i, len(held)):
                    hj = held[j]
                    hj.chain_key = key = ((key ^ hj.hid) * _PRIME) & _MASK
                return
        raise UsageError(f"lock_downgrade of {map.name}, which {self.k.current.name} does not hold")

    def lock_is_held_type(self, map: Any, read: int = -1, t: KThread | None = None) -> bool:
        """``lock_is_held_type``: held at all (-1), exclusively (0) or for reading (1)."""
        t = t or self.k.current
        return any(h.map is map and (read == -1 or bool(h.read) == bool(read)) for h in t.held)

    # ------------------------------------------------------------------ priming

    def boot_acquire(self, bt: BootThread, map: Any, read: int = 0, nest_lock: Any = None) -> None:
        """An acquisition by the boot-time priming (no scenario thread involved)."""
        self._acquire(bt, map, read, False, 0, nest_lock, bt.stack[0])

    def boot_release(self, bt: BootThread, map: Any) -> None:
        held = bt.held
        for i in range(len(held) - 1, -1, -1):
            if held[i].map is map:
                del held[i]
                return
        raise UsageError(f"priming released {map.name}, which it does not hold")

    # ------------------------------------------------------------------ irq usage (R7)

    def hardirqs_on(self, t: Any) -> None:
        """``trace_hardirqs_on`` -> ``mark_held_locks``: every lock held when interrupts come
        back on is now used with interrupts enabled, and with softirqs enabled when they
        are (R7): an irq-safe one is an inconsistent lock state (locking-selftest
        ``irqsafe2B``; a softirq-safe one: ``irqsafe2A``)."""
        soft = _softirqs_on(t)
        self._mark_held(t, ENABLED_HARDIRQ)
        if soft:
            self._mark_held(t, ENABLED_SOFTIRQ)

    def softirqs_on(self, t: Any) -> None:
        """``trace_softirqs_on`` (``local_bh_enable``) -> ``mark_held_locks``: with hardirqs on,
        every lock held is now used with softirqs enabled (R7; ``irqsafe2B``'s softirq variant)."""
        if _irqs_on(t):
            self._mark_held(t, ENABLED_SOFTIRQ)

    def _mark_held(self, t: Any, write_bit: int) -> None:
        held = t.held
        for hl in list(held):
            bit = write_bit << 1 if hl.read else write_bit  # the _READ bit follows its write bit
            if not hl.cls.usage & bit:
                self._mark(t, held, hl, bit)

    def _mark_usage(self, t: Any, held: list[Any], hl: LockdepHeld, bits: int) -> None:
        """``mark_usage``: set each of ``bits`` the class lacks, in the kernel's order
        (in-hardirq, in-softirq, hardirq-on, softirq-on)."""
        usage = hl.cls.usage
        for bit in _MARK_ORDER:
            if bits & bit and not usage & bit:
                self._mark(t, held, hl, bit)

    def _mark(self, t: Any, held: list[Any], hl: LockdepHeld, bit: int) -> None:
        """``mark_lock``: set a usage bit and check it against the class and its dependencies."""
        cls = hl.cls
        cls.usage |= bit
        cls.usage_sites.setdefault(bit, (self._stack(t), t.name))
        conflict = cls.usage & EXCLUSIVE_USAGE[bit]
        who = self._who(t)
        state = state_of(bit)
        sh = STATE_SHIFT * state
        if conflict:
            prev_bit = next(b for b in _MARK_ORDER if conflict & b)
            sname = STATE_NAMES[state]
            self.k.report(
                "recursive-locking",
                TITLE_INCONSISTENT,
                details={
                    "chain": [cls.name],
                    "lock": cls.name,
                    "usage": [rep.USAGE_NAMES[prev_bit], rep.USAGE_NAMES[bit]],
                },
                rule=f"lockdep R7: a lock taken in {sname.lower()} context must never be taken with "
                     f"{'interrupts' if state == 0 else 'softirqs'} enabled",
                signature=f"inconsistent-lock-state:{cls.name}",
                text=rep.usage_bug(who, _state_line(t), hl, prev_bit, bit, self._stack(t), held),
            )
            return
        g = self.graph
        if bit & _USED_IN:
            # Safe now: a reader-only safe class blocks an interrupt only when held exclusively.
            first = DEP_ALL if cls.usage & (USED_IN_HARDIRQ << sh) else DEP_EN | DEP_ER
            path = g.irq_conflict_path(cls, True, None, first, state)
            if path is not None:
                self._report_inversion(t, held, hl, path, True, [c.name for c in path], state)
        else:
            # Unsafe now: a reader-only unsafe class is blocked only by a non-recursive acquisition.
            first = DEP_ALL if cls.usage & (ENABLED_HARDIRQ << sh) else DEP_EN | DEP_SN
            path = g.irq_conflict_path(cls, False, None, first, state)
            if path is not None:
                self._report_inversion(t, held, hl, path, False, [c.name for c in reversed(path)], state)

    def _report_inversion(
        self,
        t: Any,
        held: list[Any],
        hl: LockdepHeld,
        path: list[LockClass],
        forwards: bool,
        chain: list[str],
        state: int,
    ) -> None:
        other = path[-1]
        sh = STATE_SHIFT * state
        if forwards:
            bit = (ENABLED_HARDIRQ if other.usage & (ENABLED_HARDIRQ << sh) else ENABLED_HARDIRQ_READ) << sh
        else:
            bit = (USED_IN_HARDIRQ if other.usage & (USED_IN_HARDIRQ << sh) else USED_IN_HARDIRQ_READ) << sh
        self.k.report(
            "circular-locking",
            TITLE_IRQ_INVERSION,
            details={"chain": chain, "lock": hl.cls.name, "safe": chain[0], "unsafe": chain[-1],
                     "state": STATE_NAMES[state]},
            rule="lockdep R7: an irq-safe lock must not depend on an irq-unsafe one",
            signature="irq-inversion:" + ("" if state == 0 else "softirq:") + "->".join(chain),
            text=rep.irq_inversion(self._who(t), hl, path, forwards, bit, self._stack(t), held, STATE_NAMES[state]),
        )

    def _check_irq_dependency(self, t: Any, held: list[Any], prev: LockdepHeld, nxt: LockdepHeld) -> bool:
        """``check_irq_usage``: no irq-safe class before ``prev`` and irq-unsafe one after
        ``nxt``, in either irq state (hardirq first, as the kernel's usage masks)."""
        g = self.graph
        dep = calc_dep(prev.read, nxt.read)
        for state in (0, 1):
            back = g.irq_conflict_path(prev.cls, False, dep, DEP_ALL, state)
            if back is None:
                continue
            fwd = g.irq_conflict_path(nxt.cls, True, dep, DEP_ALL, state)
            if fwd is None:
                continue
            self._report_bad_irq(t, held, prev, nxt, back, fwd, state)
            return False
        return True

    def _report_bad_irq(self, t: Any, held: list[Any], prev: LockdepHeld, nxt: LockdepHeld,
                        back: list[LockClass], fwd: list[LockClass], state: int) -> None:
        sh = STATE_SHIFT * state
        safe, unsafe = back[-1], fwd[-1]
        safe_bit = (USED_IN_HARDIRQ if safe.usage & (USED_IN_HARDIRQ << sh) else USED_IN_HARDIRQ_READ) << sh
        unsafe_bit = (ENABLED_HARDIRQ if unsafe.usage & (ENABLED_HARDIRQ << sh) else ENABLED_HARDIRQ_READ) << sh
        chain = [c.name for c in reversed(back)] + [c.name for c in fwd]
        self.k.report(
            "circular-locking",
            TITLE_BAD_IRQ if state == 0 else TITLE_BAD_SOFTIRQ,
            details={
                "chain": chain,
                "new_edge": [prev.cls.name, nxt.cls.name],
                "safe": safe.name,
                "unsafe": unsafe.name,
                "state": STATE_NAMES[state],
            },
            rule="lockdep R7: an irq-safe lock must not depend on an irq-unsafe one",
            signature=("bad-irq-dependency:" if state == 0 else "bad-softirq-dependency:") + "->".join(chain),
            text=rep.bad_irq_dependency(
                self._who(t),
                _state_line(t),
                nxt,
                prev,
                safe,
                safe_bit,
                unsafe,
                unsafe_bit,
                self._stack(t),
                held,
                STATE_NAMES[state],
            ),
        )

    # ------------------------------------------------------------------ reports

    def _report_circular(self, t: Any, held: list[Any], prev: LockdepHeld, nxt: LockdepHeld, path: list[Edge]) -> None:
        chain = (nxt.cls.name, *(e.dst.name for e in path)) if path else (nxt.cls.name,)
        new_edge = (prev.cls.name, nxt.cls.name)
        self.graph.note_cycle(chain, new_edge)
        sig = _cycle_signature(chain)
        k = self.k
        cur = k._current if k._current is t else None  # a boot-time (priming) report has no kthread
        if not k.wants_text(sig):  # already held by the explorer (or this execution): no text, no stack
            k.report("circular-locking", TITLE_CIRCULAR,
                     details=self._circular_details(t, held, chain, new_edge, path),
                     rule=RULE_CIRCULAR, signature=sig, threads=(k.thread_info(cur, ()),) if cur else None)
            return
        stack = self._stack(t)
        k.report(
            "circular-locking",
            TITLE_CIRCULAR,
            details=self._circular_details(t, held, chain, new_edge, path),
            rule=RULE_CIRCULAR,
            signature=sig,
            threads=(k.thread_info(cur, stack),) if cur else None,
            text=rep.circular(self._who(t), nxt, prev, path, stack, held, self.execution),
        )

    @staticmethod
    def _circular_details(t: Any, held: list[Any], chain: tuple[str, ...], new_edge: tuple[str, str],
                          path: list[Edge]) -> dict[str, Any]:
        return {
            "chain": list(chain),
            "new_edge": list(new_edge),
            "edges": [e.to_json() for e in path],
            "held": [h.cls.name for h in held],
            "thread": t.name,
        }

    def _report_recursive(self, t: Any, held: list[Any], prev: LockdepHeld, nxt: LockdepHeld) -> None:
        name = nxt.cls.name
        self.k.report(
            "recursive-locking",
            TITLE_RECURSIVE,
            details={
                "chain": [prev.cls.name, name],
                "lock": name,
                "held": [h.cls.name for h in held],
                "thread": t.name,
            },
            rule="lockdep R3: a lock class taken again without a nesting annotation",
            signature=f"recursive-locking:{name}:{nxt.site}",
            text=rep.recursive(self._who(t), nxt, prev, self._stack(t), held),
        )

    def _check_nest_held(self, t: Any, held: list[Any], hl: LockdepHeld) -> None:
        """R4: the nest lock must be held (``print_lock_nested_lock_not_held``)."""
        nest = hl.nest_lock
        for h in held:
            if h.map is nest:
                return
        nest_name = getattr(nest, "name", repr(nest))
        self.k.report(
            "assertion",
            TITLE_NEST_NOT_HELD,
            details={"lock": hl.cls.name, "nest_lock": nest_name},
            rule="lockdep R4: a nest_lock must be held by the thread",
            signature=f"nest-lock-not-held:{hl.cls.name}:{nest_name}",
            text=rep.simple(
                TITLE_NEST_NOT_HELD,
                self._who(t),
                [
                    f"{self._who(t)} is trying to lock:",
                    rep.lock_line(hl.cls, hl.site),
                    "but this task is not holding:",
                    nest_name,
                ],
                held,
                self._stack(t),
            ),
        )

    def debug_check_no_locks_freed(self, obj: Any) -> None:
        """``debug_check_no_locks_freed``: report when a lock being freed or re-initialised is held.

        ``obj`` is a lock (anything with a ``dep_map``) or a lockdep map.
        """
        m = getattr(obj, "dep_map", obj)
        for t in self.k.threads:
            for h in t.held:
                if h.map is m:
                    who = self._who(t)
                    self.k.report(
                        "assertion",
                        TITLE_HELD_FREED,
                        details={"lock": h.cls.name, "holder": t.name},
                        rule="lockdep R8: a held lock must not be freed or re-initialised",
                        signature=f"held-lock-freed:{h.cls.name}:{call_site()}",
                        text=rep.simple(
                            TITLE_HELD_FREED,
                            self._who(self.k.current),
                            [
                                f"{self._who(self.k.current)} is freeing memory, with a lock still held there!",
                                rep.lock_line(h.cls, h.site),
                                f"held by {who}",
                            ],
                            t.held,
                            scenario_stack(),
                        ),
                    )
                    return

    def check_held_at_end(self) -> None:
        """R8: threads still alive at the end of the execution must hold no locks.

        The isolation checker (``check`` room) reports the same condition as
        part of its leak check; when it is installed with its leak check on,
        this check leaves the report to it, so there is one finding.
        """
        iso = self.k.ext.get("isolation")
        if iso is not None and getattr(iso, "leak_check", False):
            return
        for t in self.k.threads:
            if t.exited or not t.held:
                continue
            names = [h.map.name for h in t.held]
            who = self._who(t)
            self.k.report(
                "leak",
                TITLE_HELD_AT_END,
                details={"locks": names, "thread": t.name},
                rule="lockdep R8: no lock may be held when the execution ends",
                signature=f"held-at-end:{t.name}:{','.join(names)}",
                text=rep.simple(
                    TITLE_HELD_AT_END, who, [f"{who} is leaving the execution with locks still held!"], t.held, ()
                ),
                thread=t,
            )

    # ------------------------------------------------------------------ export

    def to_dot(self) -> str:
        """Graphviz DOT of the dependency graph, reported cycles in red."""
        return self.graph.to_dot()
