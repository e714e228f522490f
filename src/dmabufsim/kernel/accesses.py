"""The undeclared-access checker: a debug mode that proves the declarations cover the model.

``Config(check_accesses=True)`` (``--check-accesses``) records every read
and write the model's objects really perform and checks them against what
the scheduling points declared. Partial-order reduction (``explore/dpor.py``,
``explore/odpor.py``) only reorders steps it believes independent; a step
that touches state its point does not declare makes that belief wrong, and
a clean verdict could then be false. This checker finds such steps.

Rules:

* A1 (segments): a thread's *segment* runs from one of its scheduling
  points (or its start, or its wake-up) to the next one (or its wait, or
  its exit). A segment *declares* the access of the point that began it
  (``Kernel.point(op, obj, write)``), every event it emits
  (``Kernel.event``), the wait that ended it and the wait it resumed from
  (a write of the waited object; a read when the wait says its waker
  unlinked it, ``Kernel.block(woken_reads=True)``, or, for the wait that
  ended it, that its queued node commutes with the other sleepers',
  ``Kernel.block(sleep_reads=True)``), its thread's creation (a read of a
  pseudo-object the parent's ``spawn`` point writes) and its thread's exit
  (a write of a pseudo-object a ``join`` reads: its point, runtime R15).
* A2 (declared happens-before): program order plus every pair of segments
  whose declarations touch one object with at least one write, in
  execution order, by vector clocks -- the order partial-order reduction
  sees (``dpor`` R1, ``odpor`` R1, R2).
* A3 (actual accesses): every attribute read and write of an instance of a
  model class (the classes defined in ``kernel``, ``locking``, ``dma``,
  ``mm``, ``device`` and ``drivers``, except the runtime's own, lockdep's
  and immutable ones) made by model code in a segment. A container held in
  an attribute (list, dict, set, deque) that changed during the segment is
  a write of that attribute. Accesses made by the runtime, the checkers,
  the explorer and the reports are observation, not model behaviour, and are
  not recorded; neither are accesses from timer callbacks (no thread),
  nor an object's writes to itself in its ``__init__``: before it is
  published, no other thread can reach it, and whatever publishes it is an
  access of the object that holds the reference (checked itself).
  A class names in ``__untracked__`` the attributes that are not model
  state (a checker's bookkeeping, a cache that never changes what happens),
  or ``"*"`` for all of them; each such name says why in a comment.
  An atomic update of a count made through ``kernel/counter.py`` is
  recorded as an *update* of the attribute when its step declared it
  commuting (counter C7), as a write otherwise. A plain attribute a
  segment wrote and left as it found it (the same object, or an equal
  number or string: a lock's owner set and cleared by a whole critical
  section) was only read by the segment: no other thread can see the value
  between, so it is recorded as a read.
* A4 (the check): two actual accesses of one attribute of one object, by
  two threads, at least one a write, must be ordered by A2. When they are
  not, the later one's segment, or the earlier one's, touched state it did
  not declare: an ``undeclared-access`` finding (error) names the object
  and attribute, both accesses with their Python lines and the declared
  sets of both segments. Accesses ordered by a lock held across scheduling
  points are ordered by A2 (the lock's acquire and release are declared
  writes), so state it protects needs no declaration of its own there. A
  whole critical section inside one segment declares only a read of its
  lock (``kernel/reduction.py`` L6, ``Kernel.section_read``: the segment
  began at the lock's own point and the lock's two writes become one read),
  so what such a section touches must be declared on its own, and an
  undeclared one is caught here. Two updates of one count
  (A3) do not conflict with each other; an update conflicts with a read
  and a write of the attribute -- the check is exactly
  the soundness condition of the reduction, not a style rule. Likewise a
  step that wakes a thread (makes it runnable) must declare a write of what
  that thread waits on, or the reduction would not know the step enabled it.
* A5 (cost): off, nothing is installed (zero cost). On, the model classes
  get attribute hooks for the duration of the execution (removed after it,
  even on error); an execution is several times slower.
* A6 (bit-fields): a class names in ``__bitfields__`` the int attributes
  whose bits are separate state (a fence's ``flags``: the kernel's atomic
  bitops ``test_bit``, ``set_bit``, ``test_and_set_bit`` touch one bit each),
  mapping each to the names of its bits (for the reports). Each bit is then
  compared on its own (A4), as ``flags.SIGNALED`` or ``flags[5]``. A write
  of the attribute writes the bits it changes (a bit set again, or
  preserved by ``flags | X``, is not written: within one step no other
  thread sees the word between the load and the store, so the store is the
  atomic ``set_bit`` of the changed bits). A read returns a tracking int:
  ``value & mask`` reads the bits of ``mask`` (``value | X`` keeps the
  tracking, with the bits of ``X`` known, not read); any other use of it
  (a comparison, ``bool``, a hash, arithmetic, storing it in another
  attribute) reads every bit. The bits are read in the segment that loaded
  the attribute: testing them in a later segment is a ``SimulatorError``
  (test the bits in the step that loads them).
"""

from __future__ import annotations

import collections
import dataclasses
import enum
import sys
from collections.abc import Iterator
from types import CodeType, ModuleType
from typing import TYPE_CHECKING, Any

from .errors import SimulatorError

if TYPE_CHECKING:
    from .runtime import Kernel
    from .thread import KThread
    from .trace import Event

#: Rooms whose classes are the model (A3).
MODEL_ROOMS = ("kernel", "locking", "dma", "mm", "device", "drivers")
#: Modules of those rooms that are machinery or checkers, not model state (A3).
_NOT_MODEL = (
    "dmabufsim.kernel.runtime",
    "dmabufsim.kernel.accesses",
    "dmabufsim.kernel.trace",
    "dmabufsim.kernel.choices",
    "dmabufsim.kernel.strategy",
    "dmabufsim.kernel.findings",
    "dmabufsim.kernel.execution",
    "dmabufsim.kernel.stack",
    "dmabufsim.kernel.token",
    "dmabufsim.kernel.errors",
    "dmabufsim.kernel.thread",
    "dmabufsim.kernel.held",
    "dmabufsim.kernel.reduction",
    "dmabufsim.kernel.watchdog",  # wall-clock machinery: its SIGALRM handler lands in any step
    "dmabufsim.locking.lockdep",
    "dmabufsim.locking.lockdep_graph",
    "dmabufsim.kernel.lockdep_map",
    "dmabufsim.locking.lockdep_priming",
    "dmabufsim.locking.lockdep_report",
)
#: Source paths whose accesses are observation (A3): the runtime, checkers, explorer, reports.
_OBSERVERS = (
    "/dmabufsim/kernel/runtime.py",
    "/dmabufsim/kernel/accesses.py",
    "/dmabufsim/kernel/findings.py",
    "/dmabufsim/kernel/stack.py",
    "/dmabufsim/kernel/held.py",
    "/dmabufsim/kernel/reduction.py",
    "/dmabufsim/kernel/watchdog.py",
    "/dmabufsim/locking/lockdep",
    "/dmabufsim/check/",
    "/dmabufsim/explore/",
    "/dmabufsim/report/",
)
_CONTAINERS = (list, dict, set, collections.deque, bytearray)
#: Values compared by equality when a segment restores an attribute (A3); others by identity.
_VALUES = (int, bool, str, float)
#: A value of an attribute not set yet (A3).
_UNSET = object()
#: Bits of a bit-field a use of its whole value reads (A6: ``unsigned long``).
_WORD_BITS = 64
_ALL = (1 << _WORD_BITS) - 1
#: The lock points that begin a whole critical section (A4, reduction L6).
_LOCK_POINTS = frozenset(("spin_lock", "mutex_lock"))

_oga = object.__getattribute__
_osa = object.__setattr__

#: The checker of the running execution while one runs with ``check_accesses`` (A5).
_ACTIVE: AccessChecker | None = None


def _freeze(v: Any) -> Any:
    """A comparable snapshot of a container: builtin containers copied all the way down,
    every other value kept as itself (compared by its own equality, identity by default)."""
    if isinstance(v, dict):
        return ("d", tuple((k, _freeze(x)) for k, x in v.items()))
    if isinstance(v, (list, collections.deque, tuple)):
        return ("l", tuple(_freeze(x) for x in v))
    if isinstance(v, (set, frozenset)):
        return ("s", frozenset(v))
    if isinstance(v, bytearray):
        return ("b", bytes(v))
    return v


def _observer(code: CodeType, cache: dict[CodeType, bool] = {}) -> bool:  # noqa: B006 - a cache
    o = cache.get(code)
    if o is None:
        fn = code.co_filename.replace("\\", "/")
        o = cache[code] = any(p in fn for p in _OBSERVERS)
    return o


def _where(code: CodeType, line: int) -> str:
    fn = code.co_filename.replace("\\", "/")
    i = fn.rfind("/dmabufsim/")
    return f"{fn[i + 1:] if i >= 0 else fn}:{line}"


def describe(obj: Any) -> str:
    """``DmaFence#12`` (an object with an ``oid``) or ``Vma`` (one without)."""
    try:
        oid = _oga(obj, "oid")
    except AttributeError:
        return type(obj).__name__
    return f"{type(obj).__name__}#{oid}"


#: Kinds of actual access (A3): a read, a write, an update of a count (counter C7).
_READ, _WRITE, _UPDATE = 0, 1, 2
_VERB = {_READ: ("reads", "read"), _WRITE: ("writes", "wrote"), _UPDATE: ("updates", "updated")}
_NOUN = {_READ: "read", _WRITE: "write", _UPDATE: "update"}


def note_counter(obj: Any, name: str, write: bool) -> None:
    """``kernel/counter.py`` updated ``obj.name`` (bypassing the hooks): an update (A3, A4), or a
    write when the step declared it one (counter C7). Called from the updating helper: the
    access is attributed to the helper's caller."""
    chk = _ACTIVE
    if chk is not None and not chk.busy:
        chk.touch(obj, name, None, _WRITE if write else _UPDATE, depth=3)


def _hook_get(self: Any, name: str) -> Any:
    v = _oga(self, name)
    chk = _ACTIVE
    if chk is not None and not chk.busy:
        w = chk.touch(self, name, v, _READ)
        if w is not None:
            return w  # a bit-field's tracking value (A6)
    return v


def _hook_set(self: Any, name: str, value: Any) -> None:
    if type(value) is _Bits:
        value = value._store(self, name)  # A6: stored plain, copying it elsewhere reads every bit
    chk = _ACTIVE
    if chk is None or chk.busy:
        _osa(self, name, value)
        return
    chk.busy = True
    try:
        old = _oga(self, name)
    except AttributeError:
        old = _UNSET
    finally:
        chk.busy = False
    _osa(self, name, value)
    chk.touch(self, name, value, _WRITE, old=old)


class _BitRead:
    """The bits of one load of a bit-field read so far (A6), resolved when its segment ends."""

    __slots__ = ("attr", "chk", "closed", "mask", "obj", "where")

    def __init__(self, chk: AccessChecker, obj: Any, attr: str, where: str) -> None:
        self.chk = chk
        self.obj = obj
        self.attr = attr
        self.where = where
        self.mask = 0
        self.closed = False


def _plain(x: Any) -> Any:
    return int.__int__(x) if isinstance(x, int) else x


class _Bits(int):
    """The value of a bit-field read while the checker runs (A6): an int that records which of
    its bits the model tests. ``&`` reads the mask's bits; ``|`` keeps the tracking (the bits
    it sets are known, not read); every other use reads every bit not known."""

    _cell: _BitRead
    _known: int

    def __new__(cls, value: int, cell: _BitRead, known: int = 0) -> _Bits:
        b = int.__new__(cls, value)
        _osa(b, "_cell", cell)
        _osa(b, "_known", known)
        return b

    def _mark(self, mask: int, depth: int = 2) -> None:
        cell: _BitRead = _oga(self, "_cell")
        m = mask & ~_oga(self, "_known") & _ALL
        if not m:
            return
        chk = _ACTIVE
        if chk is not cell.chk or chk is None or chk.busy:
            return
        f = sys._getframe(depth)
        if _observer(f.f_code):
            return
        if cell.closed:
            raise SimulatorError(
                f"accesses A6: {describe(cell.obj)}.{cell.attr}, loaded at {cell.where}, is tested at "
                f"{_where(f.f_code, f.f_lineno)}, in a later step: test the bits in the step that loads them")
        cell.mask |= m

    def _store(self, obj: Any, name: str) -> int:
        cell: _BitRead = _oga(self, "_cell")
        if cell.obj is not obj or cell.attr != name:
            self._mark(_ALL, 4)  # copied elsewhere: the copy carries every bit
        return int.__int__(self)

    def __and__(self, other: Any) -> Any:
        if type(other) is _Bits:
            other._mark(_ALL)
        if isinstance(other, int):
            self._mark(int.__int__(other))
        return int.__and__(int.__int__(self), _plain(other))

    __rand__ = __and__

    def __or__(self, other: Any) -> Any:
        if type(other) is _Bits:
            other._mark(_ALL)
        if not isinstance(other, int):
            return NotImplemented
        o = int.__int__(other)
        return _Bits(int.__int__(self) | o, _oga(self, "_cell"), _oga(self, "_known") | o)

    __ror__ = __or__

    def __hash__(self) -> int:
        self._mark(_ALL)
        return int.__hash__(int.__int__(self))


def _whole(name: str) -> Any:
    meth = getattr(int, name)

    def use(self: _Bits, *args: Any) -> Any:
        self._mark(_ALL)
        for a in args:
            if type(a) is _Bits:
                a._mark(_ALL)
        return meth(int.__int__(self), *(_plain(a) for a in args))

    use.__name__ = name
    return use


for _n in ("__eq__", "__ne__", "__lt__", "__le__", "__gt__", "__ge__", "__bool__", "__int__", "__index__",
           "__float__", "__repr__", "__str__", "__format__", "__xor__", "__rxor__", "__invert__", "__neg__",
           "__pos__", "__abs__", "__add__", "__radd__", "__sub__", "__rsub__", "__mul__", "__rmul__",
           "__floordiv__", "__rfloordiv__", "__truediv__", "__rtruediv__", "__mod__", "__rmod__",
           "__divmod__", "__rdivmod__", "__pow__", "__rpow__", "__lshift__", "__rlshift__", "__rshift__",
           "__rrshift__", "__round__", "__trunc__", "__floor__", "__ceil__", "bit_length", "bit_count",
           "to_bytes", "conjugate", "as_integer_ratio", "__getnewargs__", "__sizeof__", "__reduce__",
           "__reduce_ex__", "__copy__", "__deepcopy__"):
    if hasattr(int, _n):
        setattr(_Bits, _n, _whole(_n))
    elif _n in ("__copy__", "__deepcopy__"):
        setattr(_Bits, _n, lambda self, *a: (self._mark(_ALL), int.__int__(self))[1])


def _bitfields(cls: type) -> dict[str, dict[int, str]]:
    """The class's bit-fields (A6): attribute -> names of its bits, merged along the MRO."""
    out: dict[str, dict[int, str]] = {}
    for c in reversed(cls.__mro__):
        bf = c.__dict__.get("__bitfields__")
        if bf:
            for name, bits in bf.items():
                out.setdefault(name, {}).update(bits)
    return out


def _bit_label(names: dict[int, str], attr: str, bit: int) -> str:
    n = names.get(bit)
    return f"{attr}.{n}" if n is not None else f"{attr}[{bit}]"


def _bits_of(mask: int) -> Iterator[int]:
    while mask:
        low = mask & -mask
        yield low.bit_length() - 1
        mask ^= low


def _immutable(cls: type) -> bool:
    if issubclass(cls, (BaseException, enum.Enum, tuple)):
        return True
    if dataclasses.is_dataclass(cls):
        params = getattr(cls, "__dataclass_params__", None)
        if params is not None and params.frozen:
            return True
    return cls.__dict__.get("__setattr__", _hook_set) is not _hook_set or cls.__dict__.get(
        "__getattribute__", _hook_get) is not _hook_get


def model_classes() -> list[type]:
    """The classes whose instances are model state (A3), in a stable order."""
    out: list[type] = []
    for name in sorted(sys.modules):
        mod = sys.modules[name]
        if not isinstance(mod, ModuleType) or name in _NOT_MODEL:
            continue
        parts = name.split(".")
        if len(parts) < 3 or parts[0] != "dmabufsim" or parts[1] not in MODEL_ROOMS:
            continue
        for v in list(vars(mod).values()):
            if isinstance(v, type) and v.__module__ == name and not _immutable(v) and v not in out:
                out.append(v)
    return out


def _attrs(cls: type) -> tuple[frozenset[str], bool]:
    names: set[str] = set()
    has_dict = False
    for c in cls.__mro__:
        if c is object:
            continue
        slots = c.__dict__.get("__slots__")
        if slots is None:
            has_dict = True
        else:
            names.update((slots,) if isinstance(slots, str) else slots)
    names.discard("__dict__")
    names.discard("__weakref__")
    for c in cls.__mro__:
        skip = c.__dict__.get("__untracked__", ())
        if skip == "*":
            return frozenset(), False
        names.difference_update(skip)
    return frozenset(names), has_dict


def _skip(cls: type) -> frozenset[str]:
    out: set[str] = set()
    for c in cls.__mro__:
        out.update(c.__dict__.get("__untracked__", ()))
    return frozenset(out)


class _Seg:
    """A segment (A1): its declared accesses and the actual ones, in order."""

    __slots__ = ("actual", "bitreads", "declared", "first", "olds", "snaps", "wakes")

    def __init__(self, declared: list[tuple[Any, bool]], first: str = "") -> None:
        self.declared = declared
        #: The operation of the scheduling point that began the segment ("" for a wake-up, a start).
        self.first = first
        #: (id(object), attribute or bit label) -> (object, value (of the bit) before the segment's
        #: first write of it, attribute, bit or -1) (A3, A6).
        self.olds: dict[tuple[int, str], tuple[Any, Any, str, int]] = {}
        #: The loads of bit-fields (A6), resolved into reads of bits when the segment ends.
        self.bitreads: list[_BitRead] = []
        #: (object, attribute, kind (_READ, _WRITE, _UPDATE), where)
        self.actual: list[tuple[Any, str, int, str]] = []
        #: (id(object), attribute) -> (object, frozen value, where) of containers read (A3).
        self.snaps: dict[tuple[int, str], tuple[Any, Any, str]] = {}
        #: (thread woken, the object it waited on, where) (A4).
        self.wakes: list[tuple[KThread, Any, str]] = []


class _Acc:
    """The last access of one attribute by a thread: its epoch, line and declared set."""

    __slots__ = ("decl", "epoch", "thread", "where")

    def __init__(self, thread: KThread, epoch: int, where: str, decl: str) -> None:
        self.thread = thread
        self.epoch = epoch
        self.where = where
        self.decl = decl


class AccessChecker:
    """The checker of one execution (see the module Rules)."""

    def __init__(self, k: Kernel) -> None:
        self.k = k
        self.busy = False
        self._classes: list[tuple[type, bool, bool]] = []
        self._attrs: dict[type, tuple[frozenset[str], bool]] = {}
        self._bfs: dict[type, dict[str, dict[int, str]]] = {}
        self._segs: dict[int, _Seg] = {}
        self._clock: dict[int, dict[int, int]] = {}
        self._wclock: dict[Any, dict[int, int]] = {}
        self._rclock: dict[Any, dict[int, int]] = {}
        #: Threads whose next event is their point's (they are inside Kernel.point).
        self._at_point: set[int] = set()
        #: (id(object), attribute) -> (object, last write, reads since by tid, updates since by tid)
        self._shadow: dict[tuple[int, str], tuple[Any, list[_Acc | None], dict[int, _Acc], dict[int, _Acc]]] = {}
        self.undeclared = 0

    # ------------------------------------------------------------------ install (A5)

    def install(self) -> None:
        global _ACTIVE
        if _ACTIVE is not None:
            raise SimulatorError("another execution is checking accesses in this process")
        for cls in model_classes():
            had_get = "__getattribute__" in cls.__dict__
            had_set = "__setattr__" in cls.__dict__
            self._attrs[cls] = _attrs(cls)
            cls.__getattribute__ = _hook_get  # type: ignore[method-assign,assignment]
            cls.__setattr__ = _hook_set  # type: ignore[method-assign,assignment]
            self._classes.append((cls, had_get, had_set))
        _ACTIVE = self
        self.k.trace.subscribe(self._on_event)

    def uninstall(self) -> None:
        global _ACTIVE
        if _ACTIVE is self:
            _ACTIVE = None
        for cls, _, _ in self._classes:
            for n in ("__getattribute__", "__setattr__"):
                if cls.__dict__.get(n) in (_hook_get, _hook_set):
                    delattr(cls, n)
        self._classes.clear()

    # ------------------------------------------------------------------ recording (A3)

    def touch(self, obj: Any, name: str, value: Any, kind: int, depth: int = 2, old: Any = _UNSET) -> Any:
        """Record an access (A3); returns the value a bit-field load hands out (A6), else None."""
        k = self.k
        t = k._current
        if t is None or k._dead or k._in_timer:
            return None
        cls = type(obj)
        info = self._attrs.get(cls)
        if info is None:
            info = self._attrs[cls] = _attrs(cls)
        names, has_dict = info
        if name not in names and not (
            has_dict and not name.startswith("__") and name in _oga(obj, "__dict__") and name not in _skip(cls)
        ):
            return None  # a method, property or class attribute: what it reads is recorded itself
        f = sys._getframe(depth)
        code = f.f_code
        if _observer(code):
            return None
        write = kind == _WRITE
        if write and code.co_name == "__init__" and f.f_locals.get("self") is obj:
            return None  # initialisation, before the object is published (A3)
        seg = self._segs.get(t.tid)
        if seg is None:
            seg = self._start(t, [])
        where = _where(code, f.f_lineno)
        bf = self._bitfield(cls, name)
        if bf is not None and kind != _UPDATE:
            return self._touch_bits(seg, obj, name, bf, value, kind, where, old)
        if kind == _READ and isinstance(value, _CONTAINERS):
            key = (id(obj), name)
            if key not in seg.snaps:
                self.busy = True
                try:
                    seg.snaps[key] = (obj, _freeze(value), where)
                finally:
                    self.busy = False
        elif write:
            seg.olds.setdefault((id(obj), name), (obj, old, name, -1))
        seg.actual.append((obj, name, kind, where))
        return None

    def _bitfield(self, cls: type, name: str) -> dict[int, str] | None:
        bfs = self._bfs.get(cls)
        if bfs is None:
            bfs = self._bfs[cls] = _bitfields(cls)
        return bfs.get(name)

    def _touch_bits(self, seg: _Seg, obj: Any, name: str, names: dict[int, str], value: Any, kind: int,
                    where: str, old: Any) -> Any:
        """A6: a load returns a tracking value; a store writes the bits it changes."""
        if kind == _READ:
            if not isinstance(value, int):
                seg.actual.append((obj, name, kind, where))
                return None
            cell = _BitRead(self, obj, name, where)
            seg.bitreads.append(cell)
            return _Bits(value, cell)
        new = value if isinstance(value, int) else 0
        prev = old if isinstance(old, int) else 0
        for bit in _bits_of((prev ^ new) & _ALL):
            label = _bit_label(names, name, bit)
            seg.olds.setdefault((id(obj), label), (obj, (prev >> bit) & 1, name, bit))
            seg.actual.append((obj, label, _WRITE, where))
        return None

    # ------------------------------------------------------------------ segments (A1)

    def _start(self, t: KThread, declared: list[tuple[Any, bool]], first: str = "") -> _Seg:
        clk = self._clock.get(t.tid)
        if clk is None:
            clk = self._clock[t.tid] = {}
        clk[t.tid] = clk.get(t.tid, 0) + 1
        seg = self._segs[t.tid] = _Seg(declared, first)
        return seg

    def _on_event(self, ev: Event) -> None:
        if ev.tid < 0:
            return
        seg = self._segs.get(ev.tid)
        # A spawn point names the child's tid, not an object (a pseudo-object here, A1); a join
        # point (runtime R15) the joined thread's, whose exit it reads.
        op = ev.op
        acc: tuple[Any, bool] = ((("spawn", ev.obj), True) if op == "spawn" else
                                 (("exit", ev.obj), False) if op == "join" else (ev.obj, ev.write))
        if ev.tid in self._at_point:
            self._at_point.discard(ev.tid)
            t = self._thread(ev.tid)
            self._start(t, [acc], ev.op)
        elif seg is not None:
            seg.declared.append(acc)

    def _thread(self, tid: int) -> KThread:
        for t in self.k._threads:
            if t.tid == tid:
                return t
        raise AssertionError(f"no thread {tid}")

    def at_point(self, t: KThread) -> None:
        """``t`` entered a scheduling point: its segment ends; the point's event begins the next."""
        self.end(t)
        self._at_point.add(t.tid)

    def started(self, t: KThread) -> None:
        """``t`` runs for the first time: it read its creation (A1)."""
        seg = self._segs.get(t.tid)
        if seg is None:
            self._start(t, [(("spawn", t.tid), False)])
        else:
            seg.declared.append((("spawn", t.tid), False))

    def waits(self, t: KThread, what: str, obj: int, write: bool = True) -> None:
        """``t`` goes to sleep on ``obj``: its segment ends having written it, or read it when
        the sleep says so (``Kernel.block(sleep_reads=True)``, runtime R16; A1)."""
        self.end(t, (("exit", obj), True) if what == "join" else (obj, write))

    def woken(self, t: KThread, what: str, obj: int, write: bool = True) -> None:
        """``t`` resumes from its wait on ``obj``: a new segment that wrote it, or read it when
        the wait says the woken thread only reads it (``Kernel.block(woken_reads=True)``, A1)."""
        self._start(t, [(("exit", obj), True) if what == "join" else (obj, write)])

    def exits(self, t: KThread) -> None:
        """``t``'s last segment ends with its exit (A1)."""
        self.end(t, (("exit", t.tid), True))
        self._at_point.discard(t.tid)

    def spawned(self, parent: KThread | None, child: KThread) -> None:
        """``parent`` creates ``child``: its segment writes the creation (A1). A thread made
        by a timer callback (a device completion's interrupt) comes after everything run
        so far: the clock advanced only when no thread could run."""
        if parent is not None:
            seg = self._segs.get(parent.tid)
            if seg is None:
                seg = self._start(parent, [])
            seg.declared.append((("spawn", child.tid), True))
        else:
            clk: dict[int, int] = {}
            for c in self._clock.values():
                _join(clk, c)
            self._wclock[("spawn", child.tid)] = clk

    def wakes(self, t: KThread) -> None:
        """The running thread wakes ``t``: its step must write what ``t`` waits on (A4)."""
        k = self.k
        u = k._current
        if u is None or k._in_timer or k._dead or t.blocked_on is None:
            return
        what, obj, _ = t.blocked_on
        seg = self._segs.get(u.tid)
        if seg is None:
            return
        f = sys._getframe(2)
        while f.f_back is not None and _observer(f.f_code):
            f = f.f_back
        seg.wakes.append((t, ("exit", obj) if what == "join" else obj, _where(f.f_code, f.f_lineno)))

    def section_read(self, t: KThread, lock: int) -> None:
        """``t`` released ``lock``, taken free at its own lock point, waking no waiter
        (``Kernel.section_read``): if the segment began at that point and the lock's only
        declared accesses are that point and the release, they become one read (A4)."""
        seg = self._segs.get(t.tid)
        if seg is None or seg.first not in _LOCK_POINTS:
            return
        decl = seg.declared
        at = [x for x, a in enumerate(decl) if a[0] == lock]
        if len(at) != 2 or at[0] != 0 or not (decl[0][1] and decl[at[1]][1]):
            return
        decl[0] = (lock, False)
        del decl[at[1]]

    def joined(self, t: KThread, other: KThread) -> None:
        """``t`` joined ``other``, which had already exited: it read the exit (A1)."""
        seg = self._segs.get(t.tid)
        if seg is not None:
            seg.declared.append((("exit", other.tid), False))

    # ------------------------------------------------------------------ the check (A2, A4)

    def end(self, t: KThread, extra: tuple[Any, bool] | None = None) -> None:
        seg = self._segs.pop(t.tid, None)
        if seg is None:
            return
        if extra is not None:
            seg.declared.append(extra)
        self.busy = True
        try:
            self._check(t, seg)
        finally:
            self.busy = False

    def _check(self, t: KThread, seg: _Seg) -> None:
        clk = self._clock[t.tid]
        wclock, rclock = self._wclock, self._rclock
        for o, w in seg.declared:
            _join(clk, wclock.get(o))
            if w:
                _join(clk, rclock.get(o))
        actual = seg.actual
        for cell in seg.bitreads:
            # A6: the bits the segment tested of each load it made
            cell.closed = True
            if cell.mask:
                names = self._bitfield(type(cell.obj), cell.attr) or {}
                actual.extend((cell.obj, _bit_label(names, cell.attr, bit), _READ, cell.where)
                              for bit in _bits_of(cell.mask))
        if seg.olds:
            # A3: an attribute the segment wrote and left as it found it was only read
            restored = set()
            for key, (obj, old, attr, bit) in seg.olds.items():
                try:
                    now = _oga(obj, attr)
                except AttributeError:
                    now = _UNSET
                if bit >= 0:
                    now = (now >> bit) & 1 if isinstance(now, int) else _UNSET
                if now is old or (type(now) in _VALUES and type(old) is type(now) and now == old):
                    restored.add(key)
            if restored:
                actual = [(o, n, _READ if kind == _WRITE and (id(o), n) in restored else kind, w)
                          for o, n, kind, w in actual]
        for (_, name), (obj, snap, where) in seg.snaps.items():
            try:
                now = _freeze(_oga(obj, name))
            except AttributeError:
                continue
            if now != snap:
                actual.append((obj, name, _WRITE, where + " (the container changed in this step)"))
        for woken, obj, where in seg.wakes:
            if (obj, True) not in seg.declared:
                self._report_wake(t, woken, obj, where, _decl_text(seg.declared))
        decl = None
        me = t.tid
        epoch = clk[me]
        for obj, name, kind, where in actual:
            key = (id(obj), name)
            sh = self._shadow.get(key)
            if sh is None:
                sh = self._shadow[key] = (obj, [None], {}, {})
            _, lw, reads, updates = sh
            last = lw[0]
            if decl is None:
                decl = _decl_text(seg.declared)
            if last is not None and last.thread.tid != me and last.epoch > clk.get(last.thread.tid, 0):
                self._report(t, obj, name, kind, where, decl, last, _WRITE)
            # A4: a write is ordered after the reads and the updates since the last write; an
            # update after the reads; a read after the updates (updates commute: counter C7).
            for others, their in ((reads, _READ), (updates, _UPDATE)):
                if (their == _READ and kind == _READ) or (their == _UPDATE and kind == _UPDATE):
                    continue
                for u, r in others.items():
                    if u != me and r.epoch > clk.get(u, 0):
                        self._report(t, obj, name, kind, where, decl, r, their)
                        break
            if kind == _WRITE:
                lw[0] = _Acc(t, epoch, where, decl)
                reads.clear()
                updates.clear()
            elif kind == _UPDATE:
                updates[me] = _Acc(t, epoch, where, decl)
            else:
                reads[me] = _Acc(t, epoch, where, decl)
        for o, w in seg.declared:
            if w:
                wclock[o] = dict(clk)
                rclock.pop(o, None)
            else:
                rc = rclock.get(o)
                if rc is None:
                    rclock[o] = dict(clk)
                else:
                    _join(rc, clk)

    def _report_wake(self, t: KThread, woken: KThread, obj: Any, where: str, decl: str) -> None:
        self.undeclared += 1
        title = (
            f"undeclared wake-up: {t.name} wakes {woken.name}, which waits on {_wake_text(obj)}, at {where} "
            f"(step declared {decl}): the step must write what the thread waits on"
        )
        self.k.report(
            "undeclared-access",
            title,
            details={"object": _wake_text(obj), "attribute": "<wait>", "access": "wake", "where": where,
                     "declared": decl, "other_thread": woken.name, "other_access": "wait", "other_where": "",
                     "other_declared": ""},
            rule="accesses A4: a wake-up writes what the woken thread waits on",
            signature=f"undeclared-wake:{woken.name}:{where}",
            thread=t,
        )

    def _report(self, t: KThread, obj: Any, name: str, kind: int, where: str, decl: str,
                other: _Acc, other_kind: int) -> None:
        self.undeclared += 1
        what = describe(obj)
        mine = _VERB[kind][0]
        theirs = _VERB[other_kind][1]
        title = (
            f"undeclared access: {t.name} {mine} {what}.{name} at {where} (step declared {decl}), "
            f"not ordered after {other.thread.name}, which {theirs} it at {other.where} "
            f"(step declared {other.decl})"
        )
        self.k.report(
            "undeclared-access",
            title,
            details={
                "object": what,
                "attribute": name,
                "access": _NOUN[kind],
                "where": where,
                "declared": decl,
                "other_thread": other.thread.name,
                "other_access": _NOUN[other_kind],
                "other_where": other.where,
                "other_declared": other.decl,
            },
            rule="accesses A4: conflicting accesses are ordered by the declared accesses",
            signature=f"undeclared-access:{type(obj).__name__}.{name}:{where}:{other.where}",
            thread=t,
        )


def _wake_text(obj: Any) -> str:
    return f"{obj[0]} of thread {obj[1]}" if isinstance(obj, tuple) else f"#{obj}"


def _join(into: dict[int, int], other: dict[int, int] | None) -> None:
    if other:
        for u, e in other.items():
            if into.get(u, 0) < e:
                into[u] = e


def _decl_text(declared: list[tuple[Any, bool]]) -> str:
    parts = []
    for o, w in declared:
        name = f"{o[0]} of thread {o[1]}" if isinstance(o, tuple) else f"#{o}"
        parts.append(f"{'write' if w else 'read'} {name}")
    return "[" + ", ".join(dict.fromkeys(parts)) + "]"


def iter_hooked() -> Iterator[type]:
    """The classes hooked right now (for tests: none once an execution ended)."""
    for cls in model_classes():
        if cls.__dict__.get("__getattribute__") is _hook_get:
            yield cls
