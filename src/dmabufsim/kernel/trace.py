"""The trace: one ordered stream of events per execution.

Every scheduling point and every notable model event (a fence signalled, a
DMA write) is an :class:`Event`. The trace folds every event into a running
64-bit digest (the determinism contract is checked on it) and hands events
to the listeners that subscribed. With no listener an event costs a few
integer operations and builds no object.

Object ids are stable across executions (creation order), never ``id()``;
operation names are folded in by their CRC-32, which is the same in every
process (unlike ``hash()`` of a string).
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

#: Access kinds a scheduling point declares (DPOR needs them).
READ = False
WRITE = True

_MASK = (1 << 64) - 1
_PRIME = 0x100000001B3  # FNV-1a 64-bit prime
_OFFSET = 0xCBF29CE484222325  # FNV-1a 64-bit offset basis
_PRIME2 = (_PRIME * _PRIME) & _MASK  # h * P * P mod 2**64 in one multiplication
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


@dataclass(frozen=True, slots=True)
class Event:
    """One event: the step number, thread id, operation, object id, access, detail.

    ``write`` is True when the operation modifies the object (two operations
    on the same object conflict unless both are reads). ``detail`` is a short
    printable string (no object addresses: it goes into the digest). ``tid``
    is -1 for events of no thread (a timer firing).
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
    x = (_OPX.get(op) or op_word(op)) ^ (obj << 1) ^ write
    if detail:
        x ^= _DETX.get(detail) or detail_word(detail)
    return x


class Trace:
    """The event stream of one execution: digest, optional recording, listeners."""

    __slots__ = ("_active", "_h", "count", "events", "listeners", "point_emits")

    def __init__(self, record: bool = False) -> None:
        self._h = _OFFSET
        #: Callables invoked with each :class:`Event` (checkers, reporters).
        self.listeners: list[Listener] = []
        #: The events themselves, kept only when recording was asked for.
        self.events: list[Event] | None = [] if record else None
        #: Events that went through :meth:`emit`.
        self.count = 0
        #: Of those, the ones ``Kernel.point`` emitted (the kernel counts the points
        #: whose digest it folded itself: :meth:`digest_with`).
        self.point_emits = 0
        self._active = record

    def subscribe(self, fn: Listener) -> None:
        """Call ``fn(event)`` for every later event."""
        self.listeners.append(fn)
        self._active = True

    def emit(self, step: int, tid: int, op: str, obj: int, write: bool, detail: str, now: int) -> None:
        """Append one event (hot path: no Event object unless someone wants one).

        The digest folds the event word and then ``now`` FNV-1a style; the
        two multiplications share one final mask (multiplication and xor
        commute with reduction mod 2**64), and ``Kernel.point`` inlines the
        same arithmetic when the trace is not active. Keep the two in step.
        """
        self.count += 1
        x = ((tid + 1) << 52) ^ (_OPX.get(op) or op_word(op)) ^ (obj << 1) ^ write
        if detail:
            x ^= _DETX.get(detail) or detail_word(detail)
        if now:
            self._h = ((((self._h ^ x) * _PRIME) ^ now) * _PRIME) & _MASK
        else:  # folding in a zero time is one more multiplication by the prime
            self._h = ((self._h ^ x) * _PRIME2) & _MASK
        if self._active:
            ev = Event(step, tid, op, obj, write, detail, now)
            if self.events is not None:
                self.events.append(ev)
            for fn in self.listeners:
                fn(ev)

    @property
    def digest(self) -> str:
        """Hex digest of every event so far (and of their number)."""
        return self.digest_with(0)

    def digest_with(self, folded: int) -> str:
        """:attr:`digest` when ``folded`` more events were folded into it without :meth:`emit`
        (``Kernel.point``'s inlined digest, which leaves the counting to the kernel's steps)."""
        return f"{((self._h ^ (self.count + folded)) * _PRIME) & _MASK:016x}"
