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
_OPCODES: dict[str, int] = {}
#: CRC-32 of event details (mostly lock and object names), cached: the
#: encode + crc32 of every detail was a tenth of a scheduling point.
_DETAILS: dict[str, int] = {}
_DETAILS_MAX = 1 << 14


def opcode(op: str) -> int:
    """A process-independent integer for an operation name."""
    code = _OPCODES.get(op)
    if code is None:
        code = _OPCODES[op] = zlib.crc32(op.encode())
    return code


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


class Trace:
    """The event stream of one execution: digest, optional recording, listeners."""

    __slots__ = ("_active", "_h", "count", "events", "listeners")

    def __init__(self, record: bool = False) -> None:
        self._h = _OFFSET
        #: Callables invoked with each :class:`Event` (checkers, reporters).
        self.listeners: list[Listener] = []
        #: The events themselves, kept only when recording was asked for.
        self.events: list[Event] | None = [] if record else None
        self.count = 0
        self._active = record

    def subscribe(self, fn: Listener) -> None:
        """Call ``fn(event)`` for every later event."""
        self.listeners.append(fn)
        self._active = True

    def emit(self, step: int, tid: int, op: str, obj: int, write: bool, detail: str, now: int) -> None:
        """Append one event (hot path: no Event object unless someone wants one)."""
        self.count += 1
        code = _OPCODES.get(op)
        if code is None:
            code = opcode(op)
        x = ((tid + 1) << 52) ^ (code << 20) ^ (obj << 1) ^ write
        if detail:
            dc = _DETAILS.get(detail)
            if dc is None:
                if len(_DETAILS) >= _DETAILS_MAX:
                    _DETAILS.clear()
                dc = _DETAILS[detail] = zlib.crc32(detail.encode())
            x ^= dc << 32
        h = ((self._h ^ x) * _PRIME) & _MASK
        self._h = ((h ^ now) * _PRIME) & _MASK
        if self._active:
            ev = Event(step, tid, op, obj, write, detail, now)
            if self.events is not None:
                self.events.append(ev)
            for fn in self.listeners:
                fn(ev)

    @property
    def digest(self) -> str:
        """Hex digest of every event so far (and of their number)."""
        return f"{((self._h ^ self.count) * _PRIME) & _MASK:016x}"
