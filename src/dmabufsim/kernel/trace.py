"""The trace: one ordered stream of events per execution.

Every scheduling point and every notable model event (a fence signalled, a
DMA write) is an :class:`Event`. The trace folds every event into a digest
(the determinism contract is checked on it) and hands events to the
listeners that subscribed. With no listener an event costs one integer
operation and one list append, and builds no object: the event words are
folded in C, in batches (:meth:`Trace.fold`).

Object ids are stable across executions (creation order), never ``id()``;
operation names are folded in by their CRC-32, which is the same in every
process (unlike ``hash()`` of a string).
"""

from __future__ import annotations

import sys
import zlib
from collections.abc import Callable
from typing import Any, NamedTuple

from .stack import Frame, is_internal_file, site_at

#: Access kinds a scheduling point declares (DPOR needs them).
READ = False
WRITE = True
#: Object ids at and above this are pseudo-objects: the reference count of object ``oid``
#: is :func:`refcount_oid` (``oid``), declared apart from the object itself.
_REFCOUNT_BASE = 1 << 48


#: The runtime's messages to a trace's tap that are no event of the trace: a join of a thread
#: that had exited (a read of its exit) and a whole critical section (``Kernel.section_read``).
TAP_ONLY = frozenset(("join_exited", "lock_section"))


def refcount_oid(oid: int) -> int:
    """The pseudo-object of the reference count (``kref``) of object ``oid``.

    A get, or a put that does not reach zero, commutes with every other get
    and put: they declare a read of it; the put that reaches zero (the
    release) declares a write, so it is ordered with all of them.
    """
    return _REFCOUNT_BASE + oid


def counted_oid(oid: int) -> int:
    """The object whose reference count the pseudo-object ``oid`` is (``oid`` itself for an object)."""
    return oid - _REFCOUNT_BASE if oid >= _REFCOUNT_BASE else oid


#: Pseudo-objects at and above this are the RCU-published parts of objects (:func:`published_oid`).
_PUBLISHED_BASE = 1 << 49


def published_oid(oid: int) -> int:
    """The pseudo-object of what object ``oid`` publishes to lockless readers.

    A structure read under RCU without its lock (``dma_resv``'s fence list:
    the ``rcu_assign_pointer``'d list and its entries) is state apart from
    the lock that serialises its writers: a reader never touches the lock,
    so the lock's acquire and release, and whatever a writer only reads
    under it, commute with the reader's loads. Writers declare a write of
    this pseudo-object where they store into the published structure,
    lockless readers a read where they load from it.
    """
    return _PUBLISHED_BASE + oid


#: Pseudo-objects at and above this are parts of objects declared apart (:func:`part_oid`).
_PART_BASE = 1 << 50
#: Parts per object (:func:`part_oid` folds larger part numbers onto these).
_PART_BITS = 20


def part_oid(oid: int, part: int) -> int:
    """The pseudo-object of part ``part`` of object ``oid``: state the kernel keeps apart.

    One element of an array lockless readers load one by one (a
    ``dma_resv_list``'s fence slots, its ``num_fences``), or one value of a
    sequence count (the write that moves the count off that value,
    ``seqcount`` R6). Part numbers wrap at ``2**20``: two parts that share a
    pseudo-object only add an order between their steps, never lose one.
    """
    return _PART_BASE + (oid << _PART_BITS) + (part & ((1 << _PART_BITS) - 1))


def part_owner(oid: int) -> int:
    """The object whose part the pseudo-object ``oid`` is (:func:`part_oid`; ``oid`` itself for an object)."""
    return (oid - _PART_BASE) >> _PART_BITS if oid >= _PART_BASE else oid

_MASK = (1 << 64) - 1
_PRIME = 0x100000001B3  # FNV-1a 64-bit prime
_OFFSET = 0xCBF29CE484222325  # FNV-1a 64-bit offset basis
#: Event words per folded batch (trace T2).
CHUNK = 1 << 16
_OPCODES: dict[str, int] = {}
#: What an operation name contributes to an event's word: ``opcode(op) << 20``.
_OPX: dict[str, int] = {}
#: What an event detail (mostly lock and object names) contributes to an
#: event's word, cached: ``crc32(detail) << 32``.
_DETX: dict[str, int] = {}
_DETAILS_MAX = 1 << 14


def opcode(op: str) -> int:
    """A process-independent integer for an operation name."""
    code = _OPCODES.get(op)
    if code is None:
        code = _OPCODES[op] = zlib.crc32(op.encode())
    return code


def op_word(op: str) -> int:
    """``opcode(op) << 20``, cached (the slow path of :data:`_OPX` lookups)."""
    x = _OPX.get(op)
    if x is None:
        x = _OPX[op] = opcode(op) << 20
    return x


def detail_word(detail: str) -> int:
    """``crc32(detail) << 32``, cached (bounded: the cache is emptied when full)."""
    x = _DETX.get(detail)
    if x is None:
        if len(_DETX) >= _DETAILS_MAX:
            _DETX.clear()
        x = _DETX[detail] = zlib.crc32(detail.encode()) << 32
    return x


class Event(NamedTuple):
    """One event: the step number, thread id, operation, object id, access, detail.

    ``write`` is True when the operation modifies the object (two operations
    on the same object conflict unless both are reads). ``detail`` is a short
    printable string (no object addresses: it goes into the digest). ``tid``
    is -1 for events of no thread (a timer firing). Immutable; a named tuple
    because listeners get one per event (a frozen dataclass cost ~3x more to build).
    """

    step: int
    tid: int
    op: str
    obj: int
    write: bool
    detail: str = ""
    now: int = 0

    def __str__(self) -> str:
        rw = "W" if self.write else "R"
        extra = f" {self.detail}" if self.detail else ""
        return f"[{self.step:6d} t={self.now}] T{self.tid} {self.op} #{self.obj} {rw}{extra}"


Listener = Callable[[Event], Any]


def event_word(op: str, obj: int, write: bool, detail: str = "") -> int:
    """The part of an event's digest word that does not depend on the thread.

    A lock computes the words of its own operations once and passes them to
    ``Kernel.point(..., word=)``; the digest is the same either way.
    """
    x = (obj << 1) ^ write
    if op:  # (the empty operation contributes nothing: its opcode, crc32 of nothing, is 0)
        x ^= _OPX.get(op) or op_word(op)
    if detail:
        x ^= _DETX.get(detail) or detail_word(detail)
    return x


class Trace:
    """The event stream of one execution: digest, optional recording, listeners.

    The digest (rules):

    * T1: an event is one integer, its *word*: ``((tid + 1) << 52) ^
      event_word(op, obj, write, detail)``; an event at a virtual time
      ``now > 0`` is its word followed by ``-now`` (words are never negative).
    * T2: words are appended to :attr:`words` (a list append, the hot path's
      only cost) and folded in C, a batch of ``CHUNK`` words at a time:
      ``h = hash((h, tuple(batch)))``; the last, partial batch is folded the
      same way when the digest is read. ``hash`` of ints and tuples of ints
      does not depend on the process (``PYTHONHASHSEED`` salts only str and
      bytes), so digests compare across processes and runs. The batches are
      cut at fixed word counts, so when :meth:`fold` runs (the kernel's
      periodic check, reading the digest) changes nothing, and listeners
      (which route points through :meth:`emit`) leave the digest unchanged.
    * T3: the hex digest folds the event count last (:meth:`digest_with`).
    * T4 (call sites): recording, each event also gets the scenario-level
      stack of the code that emitted it (:attr:`event_stacks`, ids into
      :attr:`stack_table`, each distinct stack kept once). Not part of the
      digest; not kept when not recording (explorations pay nothing).
    """

    __slots__ = ("_active", "_full", "_h", "_stack_ids", "_stack_of", "count", "event_stacks", "events", "listeners",
                 "point_emits", "stack_table", "tap", "words")

    def __init__(self, record: bool = False) -> None:
        self._h = _OFFSET
        #: Event words not yet folded into the digest (T1, T2).
        self.words: list[int] = []
        #: Callables invoked with each :class:`Event` (checkers, reporters).
        self.listeners: list[Listener] = []
        #: The events themselves, kept only when recording was asked for.
        self.events: list[Event] | None = [] if record else None
        #: T4: recording, each event's call site: an index into :attr:`stack_table`, parallel to ``events``.
        self.event_stacks: list[int] | None = [] if record else None
        #: T4: the distinct scenario-level stacks (innermost first), each kept once; entry 0 is the empty stack.
        self.stack_table: list[tuple[Frame, ...]] = [()]
        self._stack_ids: dict[tuple[int, ...], int] = {(): 0}
        self._stack_of: dict[tuple[Frame, ...], int] = {(): 0}
        #: Events that went through :meth:`emit`.
        self.count = 0
        #: Of those, the ones ``Kernel.point`` emitted (the kernel counts the points
        #: whose words it appended itself: :meth:`digest_with`).
        self.point_emits = 0
        #: One raw listener called as ``tap(step, tid, op, obj, write)`` before the listeners,
        #: with no :class:`Event` built (an explorer's access recorder, on every step); it also
        #: gets the runtime's messages that are no event (:data:`TAP_ONLY`).
        self.tap: Callable[[int, int, str, int, bool], Any] | None = None
        #: Someone wants :class:`Event` objects (listeners or recording).
        self._full = record
        self._active = record

    def subscribe(self, fn: Listener) -> None:
        """Call ``fn(event)`` for every later event."""
        self.listeners.append(fn)
        self._active = self._full = True

    def set_tap(self, fn: Callable[[int, int, str, int, bool], Any]) -> None:
        """Call ``fn(step, tid, op, obj, write)`` for every later event (one tap per trace)."""
        if self.tap is not None:
            raise ValueError("this trace already has a tap")
        self.tap = fn
        self._active = True

    def emit(self, step: int, tid: int, op: str, obj: int, write: bool, detail: str, now: int) -> None:
        """Append one event (hot path: no Event object unless someone wants one).

        ``Kernel.point`` inlines the word (T1) when the trace is not active.
        Keep the two in step.
        """
        self.count += 1
        x = ((tid + 1) << 52) ^ (_OPX.get(op) or op_word(op)) ^ (obj << 1) ^ write
        if detail:
            x ^= _DETX.get(detail) or detail_word(detail)
        words = self.words
        words.append(x)
        if now:
            words.append(-now)
        if self._active:
            tap = self.tap
            if tap is not None:
                tap(step, tid, op, obj, write)
                if not self._full:
                    return
            ev = Event(step, tid, op, obj, write, detail, now)
            if self.events is not None:
                self.events.append(ev)
                self.event_stacks.append(self._stack_id(sys._getframe(1)))  # type: ignore[union-attr]
            for fn in self.listeners:
                fn(ev)

    def _stack_id(self, f: Any) -> int:
        """T4: the interned scenario-level stack of the running code, from frame ``f`` outwards.

        The key is the (code object id, instruction offset) of each of the
        innermost :data:`STACK_DEPTH` scenario-level frames (what
        :func:`~dmabufsim.kernel.stack.scenario_stack` would show); ids are
        safe keys because :func:`site_at` keeps every code object it saw.
        Stack ids are handed out in order of first use, so they are the same
        in every run of the same execution. The walk ends at a
        :data:`STACK_ROOTS` frame: a timer callback's stack is its own, not
        that of the thread whose step advanced the clock.
        """
        key: list[int] = []
        codes: list[Any] = []
        scen = _SCENARIO_CODES
        model = _MODEL_CODES
        while f is not None:
            code = f.f_code
            c = id(code)
            if c in model:
                f = f.f_back
                continue
            if c not in scen:
                if c in STACK_ROOTS:
                    break
                if is_internal_file(code.co_filename):
                    model.add(c)
                    f = f.f_back
                    continue
                scen.add(c)
            lasti = f.f_lasti
            key += (c, lasti)
            codes.append((code, lasti))
            if len(codes) == STACK_DEPTH:
                break
            f = f.f_back
        k = tuple(key)
        sid = self._stack_ids.get(k)
        if sid is None:
            # Two instruction offsets of one line are one frame: one entry per distinct stack.
            frames = tuple(site_at(c, i) for c, i in codes)
            sid = self._stack_of.get(frames)
            if sid is None:
                sid = self._stack_of[frames] = len(self.stack_table)
                self.stack_table.append(frames)
            self._stack_ids[k] = sid
        return sid

    def fold(self) -> None:
        """Fold the complete batches of pending event words into the digest (T2)."""
        words = self.words
        n = len(words)
        if n >= CHUNK:
            cut = n - n % CHUNK
            h = self._h
            for i in range(0, cut, CHUNK):
                h = hash((h, tuple(words[i : i + CHUNK])))
            del words[:cut]
            self._h = h

    @property
    def digest(self) -> str:
        """Hex digest of every event so far (and of their number)."""
        return self.digest_with(0)

    def digest_with(self, folded: int) -> str:
        """:attr:`digest` when ``folded`` more events were appended without :meth:`emit`
        (``Kernel.point``'s inlined words, which leave the counting to the kernel's steps).
        Reading it changes nothing (T2)."""
        h, words = self._h, self.words
        for i in range(0, len(words), CHUNK):
            h = hash((h, tuple(words[i : i + CHUNK])))
        return f"{((h & _MASK) ^ (self.count + folded)) * _PRIME & _MASK:016x}"


#: Scenario-level frames kept per event stack (T4), as many as a finding's thread stack shows.
STACK_DEPTH = 8
#: ``id`` of the code objects where an event's stack ends (T4): the kernel's timer dispatch
#: registers itself (module-level functions, alive for the whole process).
STACK_ROOTS: set[int] = set()
#: ``id`` of code objects known to be model-internal / scenario-level (T4's walk; :func:`site_at` keeps
#: every scenario code object alive, model code lives as long as its module, so an id is never reused).
_MODEL_CODES: set[int] = set()
_SCENARIO_CODES: set[int] = set()


class SchedMark(NamedTuple):
    """Where the scheduler took the CPU from a thread of a recorded execution, and why.

    ``what`` is ``preempt`` (the thread was runnable at its scheduling point
    and another thread was chosen: ``preempt_schedule``) or ``block`` (the
    thread went to sleep: ``schedule()`` from a wait, ``on`` names what it
    waits on). ``pos`` is the number of events recorded before it (the
    thread's next event, if any, comes at or after it). Kept only while
    recording, like :class:`LockMark`: no step, no digest word, no choice.
    """

    pos: int
    tid: int
    what: str
    on: str = ""
    now: int = 0


class LockMark(NamedTuple):
    """A ``lock_stat`` hook of a recorded execution: ``lock_contended``, ``lock_acquired``, ``lock_failed``.

    Models the kernel's lock statistics hooks (``kernel/locking/lockdep.c``:
    ``lock_contended`` when an acquisition must wait, ``lock_acquired`` when
    the lock is finally taken), plus ``lock_failed`` when the attempt is
    given up (``-EDEADLK``, ``-EALREADY``, ``-EINTR``). They are kept only
    while recording and are not events: no step, no digest word, no
    scheduling point, so a recorded execution stays the execution replayed.
    ``pos`` is the number of events recorded before the hook ran (the index
    of the next event); ``obj`` the lock's object id.
    """

    pos: int
    tid: int
    what: str
    obj: int
    now: int = 0

