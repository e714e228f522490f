"""``irq_work``: a callback run soon in hard-interrupt context.

Models ``kernel/irq_work.c``: ``init_irq_work``, ``irq_work_queue``,
``irq_work_sync``. The kernel raises a self-interrupt; the callback runs in
hardirq context on this CPU.

Rules:

* I1 (queue): queueing a work already pending does nothing and returns
  False (``IRQ_WORK_PENDING``); otherwise the interrupt is raised and the
  callback runs as an interrupt handler (runtime ``raise_irq``): hardirq
  context, atomic -- a callback that sleeps (a mutex, ``GFP_KERNEL``) is
  ``sleep-in-atomic``, and the locks it takes become irq-safe for lockdep.
  The explorer decides when the handler runs.
* I2 (busy): the pending bit clears when the callback starts, so it may be
  queued again while it runs; ``irq_work_sync`` waits until it is neither
  pending nor running (it may sleep).
* I3 (declarations): queueing, starting and finishing write the work at
  scheduling points; ``irq_work_sync`` waits on it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .runtime import current_kernel
from .thread import KThread


class IrqWork:
    """``struct irq_work`` (``init_irq_work(work, func)``): ``func(work)`` runs in hardirq."""

    __slots__ = ("busy", "func", "k", "name", "oid", "pending", "waiters")

    def __init__(self, func: Callable[[IrqWork], Any], name: str | None = None) -> None:
        self.k = current_kernel()
        self.oid = self.k.new_oid()
        self.func = func
        self.name = name or str(getattr(func, "__name__", "irq_work"))
        self.pending = False
        self.busy = False
        self.waiters: list[KThread] = []

    def queue(self) -> bool:
        """``irq_work_queue``: False if already pending (I1)."""
        k = self.k
        k.point("irq_work_queue", self.oid, True, self.name)
        if self.pending:
            return False
        self.pending = True
        k.raise_irq(self._run, name=f"irq_work:{self.name}")
        return True

    def _run(self) -> None:
        """``irq_work_single`` in the self-interrupt (I1, I2)."""
        k = self.k
        k.point("irq_work_run", self.oid, True, self.name)
        self.pending = False
        self.busy = True
        try:
            self.func(self)
        finally:
            k.point("irq_work_done", self.oid, True, self.name)
            self.busy = False
            for t in list(self.waiters):
                k.wake(t)

    def sync(self) -> None:
        """``irq_work_sync``: wait until neither pending nor running (I2)."""
        k = self.k
        k.might_sleep("irq_work_sync")
        k.point("irq_work_sync", self.oid, False, self.name)
        me = k.current
        while self.pending or self.busy:
            self.waiters.append(me)
            k.block("irq_work_sync", self.oid, name=self.name)
            self.waiters.remove(me)

    def __repr__(self) -> str:
        return f"<IrqWork {self.name}>"
