"""RCU read-side critical sections and grace periods.

Models ``rcu_read_lock`` / ``rcu_read_unlock`` / ``synchronize_rcu``
(``include/linux/rcupdate.h``, ``kernel/rcu/tree.c``) as far as the
buffer-sharing stack needs them: lockless fence walks
(``dma_resv_wait_timeout`` in its RCU form, ``dma_fence_get_rcu_safe``) and
freeing that must wait for readers.

Rules:

* R1: a read section makes the thread atomic (``atomic_enter("rcu_read_lock",
  "rcu")``): sleeping inside is a ``sleep-in-atomic`` finding. Sections
  nest; only the outermost unlock leaves the section.
* R2 (grace period): ``synchronize_rcu`` returns only after every thread
  that was inside a read section when it was called has left *that*
  section (sections begun later do not delay it; a thread that exits
  counts as having left). It may sleep. A thread that exits inside a
  section is reported by lockdep (locks held at exit); a grace period
  already waiting for it never ends (an RCU stall, reported as a deadlock).
* R3: ``synchronize_rcu`` inside a read section is illegal: it is reported
  by ``might_sleep`` (the kernel's "Illegal synchronize_rcu() in RCU
  read-side critical section"), and the caller's own section is not waited
  for (the kernel would hang).
* R4 (lockdep): a read section holds ``rcu_read_lock`` as a recursive read
  of the ``rcu_read_lock`` map (``rcu_lock_acquire``).
* R5: ``rcu_read_unlock`` without a section is an ``assertion`` finding.
* R6 (scheduling): entering and leaving a section are reads of the
  execution's RCU state and a grace period's start is a write, so the
  explorer orders readers against updaters.
"""

from __future__ import annotations

from ..kernel.lockdep_map import LockdepMap
from ..kernel.runtime import Kernel, current_kernel
from ..kernel.thread import KThread

#: The name of the section for ``atomic_enter`` and of the lockdep map.
RCU = "rcu"
RCU_LOCK_MAP = "rcu_read_lock"
_NEST = "rcu_nesting"
_SECTION = "rcu_section"


class _RcuState:
    """Per-execution RCU state: the lockdep map and the threads waiting for a grace period."""

    __slots__ = ("completed", "dep_map", "gp_waiters", "oid")

    def __init__(self) -> None:
        self.dep_map = LockdepMap(RCU_LOCK_MAP)
        self.oid = self.dep_map.oid
        self.gp_waiters: list[KThread] = []
        #: Grace periods completed (``rcu_state.gp_seq`` in spirit).
        self.completed = 0


def _state(k: Kernel) -> _RcuState:
    st: _RcuState | None = k.ext.get("rcu")
    if st is None:
        st = k.ext["rcu"] = _RcuState()
    return st


def rcu_read_lock() -> None:
    """``rcu_read_lock``: enter a read-side critical section (R1, R4)."""
    k = current_kernel()
    st = _state(k)
    k.point("rcu_read_lock", st.oid, False, RCU_LOCK_MAP)
    t = k.current
    data = t.data
    depth = data.get(_NEST, 0)
    if depth == 0:
        data[_SECTION] = data.get(_SECTION, 0) + 1
    data[_NEST] = depth + 1
    k.atomic_enter("rcu_read_lock", RCU)
    k.lockdep.acquire(st.dep_map, read=2)


def rcu_read_unlock() -> None:
    """``rcu_read_unlock``: leave the section; the outermost one may end grace periods (R2, R5)."""
    k = current_kernel()
    st = _state(k)
    k.point("rcu_read_unlock", st.oid, False, RCU_LOCK_MAP)
    t = k.current
    depth = t.data.get(_NEST, 0)
    if depth == 0:
        k.report(
            "assertion",
            "WARNING: rcu_read_unlock() without rcu_read_lock()",
            details={"check": "unbalanced-unlock"},
            rule="rcu R5: balanced read sections",
            signature=f"rcu-unbalanced:{t.name}",
        )
        return
    k.lockdep.release(st.dep_map)
    k.atomic_exit("rcu_read_lock", RCU)
    t.data[_NEST] = depth - 1
    if depth == 1 and st.gp_waiters:
        for w in st.gp_waiters:
            k.wake(w)


def rcu_read_lock_held() -> bool:
    """``rcu_read_lock_held``: is the current thread inside a read section?"""
    return bool(current_kernel().current.data.get(_NEST, 0))


def synchronize_rcu() -> None:
    """``synchronize_rcu``: wait for a grace period (R2, R3)."""
    k = current_kernel()
    k.might_sleep("synchronize_rcu")
    st = _state(k)
    k.point("synchronize_rcu", st.oid, True, RCU_LOCK_MAP)
    me = k.current
    pending: list[tuple[KThread, int]] = [
        (t, t.data.get(_SECTION, 0)) for t in k.threads if t is not me and t.data.get(_NEST, 0) and not t.exited
    ]
    while True:
        pending = [
            (t, sec)
            for t, sec in pending
            if not t.exited and t.data.get(_NEST, 0) and t.data.get(_SECTION, 0) == sec
        ]
        if not pending:
            break
        st.gp_waiters.append(me)
        k.block("synchronize_rcu", st.oid, name=f"rcu grace period ({', '.join(t.name for t, _ in pending)})")
        st.gp_waiters.remove(me)
    st.completed += 1


class RcuReadSection:
    """``guard(rcu)()``: ``with rcu_read_section:`` is ``rcu_read_lock`` ... ``rcu_read_unlock``."""

    __slots__ = ()

    def __enter__(self) -> None:
        rcu_read_lock()

    def __exit__(self, *exc: object) -> None:
        rcu_read_unlock()


#: The reusable read-section guard.
rcu_read_section = RcuReadSection()


def rcu_grace_periods() -> int:
    """How many grace periods completed in this execution (``synchronize_rcu`` returns)."""
    return _state(current_kernel()).completed

