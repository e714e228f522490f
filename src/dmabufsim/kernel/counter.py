"""Commuting counters: how the updates of an atomic count are declared, for the explorers.

A reference count (``page_ref_inc`` / ``put_page``, the FOLL_PIN count,
``kref``), or any ``atomic_t`` the model keeps, changes by atomic
read-modify-writes. Two increments commute: whichever runs first, the count
ends the same and neither saw anything. Declared as writes of the object that
holds the count, they are ordered with each other and with every other access
of that object, and partial-order reduction explores both orders of every such
pair for nothing. Declared as reads of a pseudo-object of their own, they
commute -- but only where that is *true*: a put that reaches zero frees the
object, a get on a count another thread may drop to zero first is a
use-after-free, and a step that looks at the value (``page_count() == 1``,
``page_maybe_dma_pinned``) decides something by it. This module is the one
place that decides which update commutes.

Rules:

* C1 (the pseudo-object): a count embedded in an object is declared apart
  from it, as :func:`~dmabufsim.kernel.trace.refcount_oid` (``oid``) -- one
  pseudo-object per object, for its reference counts together (a page's
  ``_refcount``, its FOLL_GET and FOLL_PIN counts).
* C2 (no threshold): a count on which no update acts -- a bias or statistic
  that only an observer looks at -- commutes in both directions: every update
  declares a read (``CounterRule(floor=None)``).
* C3 (a threshold, one direction): a count whose updates act when it crosses
  a *floor* (the put that reaches zero releases; an increment from zero is a
  use-after-free, or the refusal of ``get_unless_zero``) commutes in one
  direction only, chosen per count: ``up`` (increments commute) or not
  (decrements commute). An update in the commuting direction declares a
  read when the count is at or above the floor both before and after it;
  every other update -- the other direction, or one that starts or ends
  below the floor -- declares a write, and so does an update refused at the
  floor.
* C4 (observers): a step that reads the value, or acts on it, declares a
  write of the pseudo-object (:func:`counter_observe`); it is then ordered
  with every update.
* C5 (why C2-C4 are sound): partial-order reduction treats two steps that
  declare only reads of the pseudo-object as independent and explores one
  order of them. That is sound when, in every state where both are enabled,
  running them in either order gives each the same declaration, the same
  effect and the same final state. Two updates declared reads under C3 are
  in the same direction, say increments by ``a`` and ``b`` from ``v`` with
  ``v >= floor``: in the other order they run from ``v`` and ``v + b``, both
  at or above the floor, so both are reads again and the count ends at
  ``v + a + b`` either way; decrements are symmetric (both end at or above
  the floor in either order, as the lower of the two results is the same).
  Under C2 nothing acts on the value, so any two updates commute. Every
  other pair includes a write and is ordered. No fixed floor can let both
  directions commute: an increment from ``floor`` followed by a decrement
  (both above) becomes, reversed, a decrement *from* ``floor`` -- across it.
* C6 (declared when the step runs): the declaration depends on the value
  when the update happens, so it is an event of the step
  (``Kernel.event``), never the access of a scheduling point (fixed before
  the thread waits to be scheduled, while the value may still change).
* C7 (the undeclared-access checker): an update made here is recorded for
  ``kernel/accesses.py`` as an *update* of the attribute when it declared a
  read, and as a write otherwise: updates of one count by two threads need
  no order between them (A4), a read of the attribute (an observer) or a
  write must be ordered with every update -- exactly C5's condition,
  checked on the execution.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple

from . import accesses

if TYPE_CHECKING:
    from .runtime import Kernel

_oga = object.__getattribute__
_osa = object.__setattr__


class CounterRule(NamedTuple):
    """How the updates of one kind of count are declared (C2, C3).

    ``floor``: the lowest value at which nothing happens (1 for a reference
    count: zero frees), or None when no update acts on the value (C2).
    ``up``: increments commute (True) or decrements do (False), under C3.
    """

    name: str
    floor: int | None = 1
    up: bool = True

    def commutes(self, before: int, after: int) -> bool:
        """Whether the update ``before -> after`` declares a read (C2, C3)."""
        floor = self.floor
        if floor is None:
            return True
        if (after > before) != self.up or after == before:
            return False
        return before >= floor and after >= floor


def counter_add(k: Kernel, obj: Any, attr: str, delta: int, rule: CounterRule, op: str, pseudo: int,
                refuse: int | None = None) -> int:
    """The atomic ``obj.attr += delta`` (``atomic_add_return``, ``page_ref_add``) declared by
    ``rule`` as an event of the running step on ``pseudo`` (C3, C6, C7). With ``refuse``, the
    update is not made when the count equals it (``atomic_add_unless``: a get of a free
    page, ``get_unless_zero``), and declares a write. Returns the value before."""
    before: int = _oga(obj, attr)
    if refuse is not None and before == refuse:
        k.event(op, pseudo, True)
        accesses.note_counter(obj, attr, True)
        return before
    after = before + delta
    write = not rule.commutes(before, after)
    k.event(op, pseudo, write)
    _osa(obj, attr, after)
    accesses.note_counter(obj, attr, write)
    return before


def counter_observe(k: Kernel, op: str, pseudo: int) -> None:
    """The running step reads a count, or acts on its value: a write of ``pseudo`` (C4)."""
    k.event(op, pseudo, True)
