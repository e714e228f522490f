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
  declares a read (``CounterRule(threshold=None)``).
* C3 (a threshold, one direction): a count whose updates act when it crosses
  a threshold commutes only in the direction that moves *away* from it. A
  *floor* (``up``: the put that reaches zero releases; an increment from
  zero is a use-after-free, or the refusal of ``get_unless_zero``): an
  increment from at or above the floor declares a read; every decrement,
  and an increment from below the floor, declares a write. A *ceiling*
  (``up=False``: a limit, a watermark the count must not pass): a
  decrement from at or below it declares a read; every increment, and a
  decrement from above it, declares a write. An update refused at the
  threshold (``refuse``) declares a write.
* C4 (observers): a step that reads the value, or acts on it, declares a
  write of the pseudo-object (:func:`counter_observe`); it is then ordered
  with every update.
* C5 (why C2-C4 are sound): partial-order reduction treats two steps that
  declare only reads of the pseudo-object as independent: it explores one
  order of them, and its sleep sets keep a thread asleep across a step
  independent of the one it would take, judged by the declaration that step
  had where it was first explored. Both are sound when two updates that
  each declare a read in a state ``s`` still do after the other ran, and end
  in the same state in either order. Under C3 both move away from the
  threshold: increments by ``a`` and ``b`` from ``v >= floor`` run, after
  the other, from ``v + b`` and ``v + a``, still at or above the floor, and
  end at ``v + a + b`` either way (a ceiling is symmetric). Under C2 the
  declaration does not depend on the value. Every other pair includes a
  write and is ordered. Updates *towards* a threshold never commute, even
  far from it: two decrements from 2 each stay at or above 1 alone, but the
  second of them reaches 0 (a release) in either order; and no rule lets
  both directions commute: an increment from the floor followed by a
  decrement becomes, reversed, a decrement *from* the floor -- across it.
  The hypothesis audits (``tests/unit/kernel/test_counter_por.py``) check it
  against every interleaving.
* C6 (declared when the step runs): the declaration depends on the value
  when the update happens, so it is an event of the step
  (``Kernel.event``), never the access of a scheduling point (fixed before
  the thread waits to be scheduled, while the value may still change). An
  update in the direction that never commutes (:meth:`CounterRule.always_writes`)
  declares its write at its scheduling point already: classic DPOR picks
  its backtracking points by the points' declarations.
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

    ``threshold``: where an update acts -- the floor below which (``up``) or the
    ceiling above which (``up=False``) something happens: 1 for a reference
    count, whose zero frees; None when no update acts on the value (C2).
    ``up``: increments commute (a floor) or decrements do (a ceiling), under C3.
    """

    name: str
    threshold: int | None = 1
    up: bool = True

    def always_writes(self, delta: int) -> bool:
        """Whether an update by ``delta`` declares a write in every state (C3, C6)."""
        return self.threshold is not None and (delta == 0 or (delta > 0) != self.up)

    def commutes(self, before: int, after: int) -> bool:
        """Whether the update ``before -> after`` declares a read (C2, C3)."""
        t = self.threshold
        if t is None:
            return True
        if after == before or (after > before) != self.up:
            return False
        return before >= t if self.up else before <= t


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
