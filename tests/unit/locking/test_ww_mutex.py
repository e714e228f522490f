"""ww_mutex: wound-wait and wait-die decisions, and the DEBUG_WW_MUTEXES usage checks.

The misuse tests port the ``ww_test_*`` cases of ``lib/locking-selftest.c``
(KERNEL.md 9.6) that are ww debug checks: each must produce exactly one
``ww-usage`` finding naming its check; the SUCCESS cases must produce none.
As in the kernel suite the class is wait-die; "fake held by an older t2" is a
helper thread whose context was initialised first.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

import dmabufsim as ds
from tests.helpers import run, run_first

WD = ds.WWClass("ww_lockdep", wait_die=True)
WW = ds.WWClass("ww_wound", wait_die=False)


def ww_checks(ex: ds.Execution) -> list[str]:
    return [f.details["check"] for f in ex.by_kind("ww-usage")]


def only_check(ex: ds.Execution, check: str) -> None:
    assert ww_checks(ex) == [check]
    assert ex.findings[0].title.startswith("WARNING:")
    assert [f.kind for f in ex.findings] == ["ww-usage"]
    assert ex.outcome == "completed"


class OlderHolder:
    """A thread whose context is older than anything the caller creates later, holding ``locks``."""

    def __init__(self, k: ds.Kernel, cls: ds.WWClass, *locks: ds.WWMutex) -> None:
        self.held = ds.Completion("held")
        self.release = ds.Completion("release")
        self.gone = ds.Completion("gone")
        k.spawn(self._run, cls, locks, name="t2")
        self.held.wait_for_completion()

    def _run(self, cls: ds.WWClass, locks: tuple[ds.WWMutex, ...]) -> None:
        t2 = ds.WWAcquireCtx(cls)
        for lk in locks:
            lk.lock(t2)
        self.held.complete()
        self.release.wait_for_completion()
        for lk in locks:
            lk.unlock()
        t2.fini()
        self.gone.complete()

    def let_go(self) -> None:
        """Release the locks and wait until they are free."""
        self.release.complete()
        self.gone.wait_for_completion()


def edeadlk_scenario(tail: Callable[[ds.WWMutex, ds.WWMutex, ds.WWMutex, ds.WWAcquireCtx, OlderHolder], None],
                     two_held: bool = False) -> Callable[[ds.Kernel], None]:
    """o2 (and o3 if ``two_held``) held by an older context; t locks o, then o2 -> EDEADLK; then ``tail``."""

    def scenario(k: ds.Kernel) -> None:
        o, o2, o3 = ds.WWMutex(WD, "o"), ds.WWMutex(WD, "o2"), ds.WWMutex(WD, "o3")
        holder = OlderHolder(k, WD, o2, o3) if two_held else OlderHolder(k, WD, o2)
        t = ds.WWAcquireCtx(WD)
        o.lock(t)
        with pytest.raises(ds.EDEADLK):
            o2.lock(t)
        assert t.contending_lock is o2
        tail(o, o2, o3, t, holder)

    return scenario


# ---------------------------------------------------------------- SUCCESS cases


def test_fail_acquire_success() -> None:
    """ww_test_fail_acquire: EALREADY, trylock failures, a younger context dies; no report."""
    got: list[Any] = []

    def younger(o: ds.WWMutex, o3: ds.WWMutex, t_stamp: int) -> None:
        t2 = ds.WWAcquireCtx(WD)
        got.append(t2.stamp > t_stamp)
        o3.lock(t2)
        try:
            o.lock(t2)
        except ds.EDEADLK:
            got.append("EDEADLK")
        o3.unlock()
        t2.fini()

    def scenario(k: ds.Kernel) -> None:
        o, o3 = ds.WWMutex(WD, "o"), ds.WWMutex(WD, "o3")
        t = ds.WWAcquireCtx(WD)
        o.lock(t)
        got.append(o.ctx is t)
        with pytest.raises(ds.EALREADY):
            o.lock(t)
        got.append(o.trylock())
        got.append(o.trylock(t))
        k.join(k.spawn(younger, o, o3, t.stamp, name="t2"))
        o.unlock()
        t.fini()
        got.append(o.trylock())
        o.unlock()
        got.append(o.is_locked())

    ex = run_first(scenario)
    assert ex.findings == []
    assert got == [True, False, False, True, "EDEADLK", True, False]


def test_context_context_and_try_are_clean() -> None:
    def scenario(k: ds.Kernel) -> None:
        o, o2, o3 = ds.WWMutex(WD, "o"), ds.WWMutex(WD, "o2"), ds.WWMutex(WD, "o3")
        t = ds.WWAcquireCtx(WD)
        o.lock(t)
        o2.lock(t)
        assert o3.trylock()
        assert t.acquired == 2 and o3.ctx is None
        for lk in (o3, o2, o):
            lk.unlock()
        t.done()
        t.fini()

    assert run_first(scenario).findings == []


@pytest.mark.parametrize("slow", [False, True])
def test_edeadlk_normal_backoff_is_clean(slow: bool) -> None:
    """ww_test_edeadlk_normal(_slow): back off, then take the contended lock."""

    def tail(o: ds.WWMutex, o2: ds.WWMutex, o3: ds.WWMutex, t: ds.WWAcquireCtx, h: OlderHolder) -> None:
        h.let_go()
        o.unlock()
        if slow:
            o2.lock_slow(t)
        else:
            o2.lock(t)
        assert t.contending_lock is None and o2.ctx is t
        o.lock(t)
        o.unlock()
        o2.unlock()
        t.fini()

    assert run_first(edeadlk_scenario(tail)).findings == []


# ---------------------------------------------------------------- FAILURE cases


def test_unneeded_slow() -> None:
    def scenario(k: ds.Kernel) -> None:
        o = ds.WWMutex(WD, "o")
        t = ds.WWAcquireCtx(WD)
        o.lock_slow(t)
        o.unlock()
        t.fini()

    only_check(run_first(scenario), "slow-without-edeadlk")


def test_diff_class() -> None:
    def scenario(k: ds.Kernel) -> None:
        o = ds.WWMutex(WW, "o")
        t = ds.WWAcquireCtx(WD)
        o.lock(t)
        o.unlock()
        t.fini()

    ex = run_first(scenario)
    only_check(ex, "class-mismatch")
    assert ex.findings[0].details["ctx_class"] == "ww_lockdep"


def test_context_done_twice() -> None:
    def scenario(k: ds.Kernel) -> None:
        t = ds.WWAcquireCtx(WD)
        t.done()
        t.done()
        t.fini()

    only_check(run_first(scenario), "done-twice")


def test_context_fini_twice() -> None:
    def scenario(k: ds.Kernel) -> None:
        t = ds.WWAcquireCtx(WD)
        t.done()
        t.fini()
        t.fini()

    only_check(run_first(scenario), "fini-twice")


def test_context_fini_early() -> None:
    def scenario(k: ds.Kernel) -> None:
        o = ds.WWMutex(WD, "o")
        t = ds.WWAcquireCtx(WD)
        o.lock(t)
        t.done()
        t.fini()
        o.unlock()

    ex = run_first(scenario)
    only_check(ex, "fini-locks-held")
    assert ex.findings[0].details["acquired"] == 1


def test_context_lock_after_done() -> None:
    def scenario(k: ds.Kernel) -> None:
        o = ds.WWMutex(WD, "o")
        t = ds.WWAcquireCtx(WD)
        t.done()
        o.lock(t)
        o.unlock()
        t.fini()

    ex = run_first(scenario)
    only_check(ex, "lock-after-done")
    assert ex.findings[0].title == "WARNING: ww_mutex: lock after ww_acquire_done"


def test_object_unlock_twice() -> None:
    def scenario(k: ds.Kernel) -> None:
        o = ds.WWMutex(WD, "o")
        o.lock()
        o.unlock()
        o.unlock()

    only_check(run_first(scenario), "unlock-twice")


def test_object_lock_unbalanced() -> None:
    def scenario(k: ds.Kernel) -> None:
        o = ds.WWMutex(WD, "o")
        t = ds.WWAcquireCtx(WD)
        o.lock(t)
        t.acquired = 0
        o.unlock()
        t.fini()

    only_check(run_first(scenario), "acquired-underflow")


def test_object_lock_stale_context() -> None:
    stale: list[ds.WWAcquireCtx] = []

    def other() -> None:
        t2 = ds.WWAcquireCtx(WD)
        t2.fini()
        stale.append(t2)

    def scenario(k: ds.Kernel) -> None:
        o = ds.WWMutex(WD, "o")
        k.join(k.spawn(other, name="t2"))
        o.ctx = stale[0]
        t = ds.WWAcquireCtx(WD)
        o.lock(t)
        o.unlock()
        t.fini()

    only_check(run_first(scenario), "stale-ctx")


@pytest.mark.parametrize("slow", [False, True])
def test_edeadlk_no_unlock(slow: bool) -> None:
    """ww_test_edeadlk_no_unlock(_slow): the contended lock taken while still holding o."""

    def tail(o: ds.WWMutex, o2: ds.WWMutex, o3: ds.WWMutex, t: ds.WWAcquireCtx, h: OlderHolder) -> None:
        h.let_go()
        if slow:
            o2.lock_slow(t)
        else:
            o2.lock(t)
        o2.unlock()
        o.unlock()
        t.fini()

    only_check(run_first(edeadlk_scenario(tail)), "no-backoff-after-edeadlk")


@pytest.mark.parametrize("slow", [False, True])
def test_edeadlk_acquire_more(slow: bool) -> None:
    """ww_test_edeadlk_acquire_more(_slow): another lock after -EDEADLK, still holding o."""

    def tail(o: ds.WWMutex, o2: ds.WWMutex, o3: ds.WWMutex, t: ds.WWAcquireCtx, h: OlderHolder) -> None:
        if slow:
            o3.lock_slow(t)
        else:
            o3.lock(t)
        o3.unlock()
        o.unlock()
        t.fini()
        h.let_go()

    ex = run_first(edeadlk_scenario(tail))
    only_check(ex, "wrong-lock-after-edeadlk")
    assert ex.findings[0].details["contended"] == "o2"


@pytest.mark.parametrize("slow", [False, True])
def test_edeadlk_acquire_more_edeadlk(slow: bool) -> None:
    """ww_test_edeadlk_acquire_more_edeadlk(_slow): -EDEADLK again without backing off."""

    def tail(o: ds.WWMutex, o2: ds.WWMutex, o3: ds.WWMutex, t: ds.WWAcquireCtx, h: OlderHolder) -> None:
        with pytest.raises(ds.EDEADLK):
            if slow:
                o3.lock_slow(t)
            else:
                o3.lock(t)
        o.unlock()
        t.fini()
        h.let_go()

    only_check(run_first(edeadlk_scenario(tail, two_held=True)), "edeadlk-twice")


@pytest.mark.parametrize("slow", [False, True])
def test_edeadlk_acquire_wrong(slow: bool) -> None:
    """ww_test_edeadlk_acquire_wrong(_slow): backed off correctly, then took a different lock."""

    def tail(o: ds.WWMutex, o2: ds.WWMutex, o3: ds.WWMutex, t: ds.WWAcquireCtx, h: OlderHolder) -> None:
        o.unlock()
        if slow:
            o3.lock_slow(t)
        else:
            o3.lock(t)
        o3.unlock()
        t.fini()
        h.let_go()

    only_check(run_first(edeadlk_scenario(tail)), "wrong-lock-after-edeadlk")


# ---------------------------------------------------------------- algorithms


def test_wait_die_younger_dies_older_waits() -> None:
    log: list[str] = []

    def younger(b: ds.WWMutex, ready: ds.Completion) -> None:
        ctx = ds.WWAcquireCtx(WD)
        b.lock(ctx)
        ready.complete()
        k = ds.current_kernel()
        k.msleep(2)
        log.append("younger unlocks b")
        b.unlock()
        ctx.fini()

    def scenario(k: ds.Kernel) -> None:
        a, b = ds.WWMutex(WD, "a"), ds.WWMutex(WD, "b")
        ready = ds.Completion("ready")
        ctx = ds.WWAcquireCtx(WD)
        t = k.spawn(younger, b, ready, name="younger")
        a.lock(ctx)
        ready.wait_for_completion()
        b.lock(ctx)  # older, holding a, meets a younger holder: it waits
        log.append("older got b")
        b.unlock()
        a.unlock()
        ctx.fini()
        k.join(t)

    for seed in range(10):
        log.clear()
        ex = run(scenario, seed=seed)
        assert ex.findings == []
        assert log == ["younger unlocks b", "older got b"]

    # Now the younger meets the older holder while holding a lock: it dies at once.
    got: list[str] = []

    def scenario2(k: ds.Kernel) -> None:
        a, b = ds.WWMutex(WD, "a"), ds.WWMutex(WD, "b")
        holder = OlderHolder(k, WD, a)
        ctx = ds.WWAcquireCtx(WD)
        b.lock(ctx)
        try:
            a.lock(ctx)
        except ds.EDEADLK:
            got.append("died")
        b.unlock()
        holder.let_go()
        a.lock_slow(ctx)  # holding nothing: waits, never dies
        a.unlock()
        ctx.fini()

    ex = run_first(scenario2)
    assert ex.findings == []
    assert got == ["died"]


def test_wound_wait_older_wounds_younger_holder() -> None:
    log: list[str] = []

    def younger(a: ds.WWMutex, b: ds.WWMutex, ready: ds.Completion, stamp: list[int]) -> None:
        ctx = ds.WWAcquireCtx(WW)
        stamp.append(ctx.stamp)
        b.lock(ctx)
        ready.complete()
        try:
            a.lock(ctx)  # held by the older main thread: wait ... until wounded
            log.append("younger got a")
            a.unlock()
        except ds.EDEADLK:
            log.append(f"younger EDEADLK wounded={ctx.wounded}")
        b.unlock()
        ctx.fini()

    def scenario(k: ds.Kernel) -> None:
        a, b = ds.WWMutex(WW, "a"), ds.WWMutex(WW, "b")
        ready = ds.Completion("ready")
        ctx = ds.WWAcquireCtx(WW)
        stamp: list[int] = []
        a.lock(ctx)
        t = k.spawn(younger, a, b, ready, stamp, name="younger")
        ready.wait_for_completion()
        b.lock(ctx)  # the older waits for the younger holder, wounding it
        log.append("older got b")
        assert stamp == [2] and ctx.stamp == 1
        b.unlock()
        a.unlock()
        ctx.fini()
        k.join(t)

    for seed in range(20):
        log.clear()
        ex = run(scenario, seed=seed)
        assert ex.findings == [], seed
        assert log in (
            ["younger EDEADLK wounded=True", "older got b"],
            ["older got b", "younger EDEADLK wounded=True"],
        ), (seed, log)


def test_wound_flag_cleared_when_nothing_held() -> None:
    def scenario(k: ds.Kernel) -> None:
        a = ds.WWMutex(WW, "a")
        ctx = ds.WWAcquireCtx(WW)
        ctx.wounded = True
        a.lock(ctx)  # acquired == 0 at the start: the flag is reset (R3)
        assert not ctx.wounded
        a.unlock()
        ctx.fini()

    assert run_first(scenario).findings == []


@pytest.mark.parametrize("cls", [WD, WW], ids=["wait-die", "wound-wait"])
def test_waiters_sorted_by_stamp_and_fifo_for_no_ctx(cls: ds.WWClass) -> None:
    orders: list[list[Any]] = []

    def waiter(m: ds.WWMutex, ctx_first: bool) -> None:
        if ctx_first:
            ctx = ds.WWAcquireCtx(cls)
            m.lock(ctx)
            m.unlock()
            ctx.fini()
        else:
            m.lock()
            m.unlock()

    def scenario(k: ds.Kernel) -> None:
        m = ds.WWMutex(cls, "m")
        m.lock()
        # Contexts created in spawn order get increasing stamps; make the youngest queue first.
        ths = []

        def ctx_waiter(delay_ms: int) -> None:
            ctx = ds.WWAcquireCtx(cls)
            k.msleep(delay_ms)
            m.lock(ctx)
            m.unlock()
            ctx.fini()

        ths.append(k.spawn(ctx_waiter, 3, name="old"))
        ths.append(k.spawn(ctx_waiter, 1, name="young"))
        ths.append(k.spawn(waiter, m, False, name="noctx"))
        k.msleep(5)
        orders.append([(w.task.name, w.ctx.stamp if w.ctx else None) for w in m.waiters])
        m.unlock()
        for t in ths:
            k.join(t)

    ex = run_first(scenario)
    assert ex.findings == []
    # "young" queued first, then "noctx"; "old" (older stamp) was inserted before "young".
    assert orders == [[("noctx", None), ("old", 1), ("young", 2)]] or orders == [
        [("old", 1), ("young", 2), ("noctx", None)]
    ]


def test_interruptible_lock_raises_eintr() -> None:
    got: list[str] = []

    def waiter(m: ds.WWMutex) -> None:
        ctx = ds.WWAcquireCtx(WW)
        try:
            m.lock_interruptible(ctx)
        except ds.EINTR:
            got.append("EINTR")
        assert m.waiters == [] or all(w.task.name != "w" for w in m.waiters)
        ctx.fini()

    def scenario(k: ds.Kernel) -> None:
        m = ds.WWMutex(WW, "m")
        m.lock()
        t = k.spawn(waiter, m, name="w")
        k.msleep(1)
        k.send_signal(t)
        k.join(t)
        m.unlock()

    ex = run_first(scenario)
    assert ex.findings == []
    assert got == ["EINTR"]


def test_with_statement_and_trace_carries_class_name() -> None:
    def scenario(k: ds.Kernel) -> None:
        cls = ds.WWClass("reservation_ww_class")
        m = ds.WWMutex(cls, "bo0")
        with m:
            assert m.is_locked() and m.ctx is None
        with ds.WWAcquireCtx(cls) as ctx:
            assert ctx.dep_map.name == "reservation_ww_class_acquire"
            m.lock(ctx)
            m.unlock()

    ex = run_first(scenario, record_trace=True)
    assert ex.findings == []
    assert ex.events is not None
    ops = [(e.op, e.detail) for e in ex.events if e.op.startswith("ww_")]
    assert ops == [
        ("ww_mutex_lock", "reservation_ww_class_mutex"),
        ("ww_mutex_unlock", "reservation_ww_class_mutex"),
        ("ww_acquire_init", "reservation_ww_class_acquire"),
        ("ww_mutex_lock", "reservation_ww_class_mutex"),
        ("ww_mutex_unlock", "reservation_ww_class_mutex"),
        ("ww_acquire_fini", "reservation_ww_class_acquire"),
    ]


def test_stamps_restart_every_execution_and_are_deterministic() -> None:
    stamps: list[int] = []

    def scenario(k: ds.Kernel) -> None:
        for _ in range(3):
            with ds.WWAcquireCtx(WW) as ctx:
                stamps.append(ctx.stamp)

    a = run_first(scenario)
    b = run_first(scenario)
    assert stamps == [1, 2, 3, 1, 2, 3]
    assert a.trace_digest == b.trace_digest


def test_lock_without_running_kernel_is_usage_error() -> None:
    with pytest.raises(ds.NotRunningError):
        ds.WWMutex(WW)

    def scenario(k: ds.Kernel) -> None:
        ds.WWMutex("not a class")  # type: ignore[arg-type]

    ex = run_first(scenario)
    assert ex.kinds == ["exception"]
    assert ex.findings[0].details["type"] == "UsageError"


def test_base_waiter_queues_behind_context_holder_and_leaves_ctx_alone() -> None:
    """R11: a ``mutex_lock(&o.base)`` waiter gets the mutex when the context holder unlocks;
    it never carries a context, and a waiting older context does not wound a base holder."""
    log: list[tuple[str, object, int]] = []

    def base_user(o: ds.WWMutex) -> None:
        o.base.lock()
        log.append(("base in", o.ctx, 0))
        o.base.unlock()

    def scenario(k: ds.Kernel) -> None:
        o = ds.WWMutex(WW, "o")
        t = ds.WWAcquireCtx(WW)
        o.lock(t)
        b = k.spawn(base_user, o, name="b")
        k.msleep(1)  # b queues on the wait list, context-less
        assert [(w.task.name, w.ctx) for w in o.waiters] == [("b", None)]
        o.unlock()
        log.append(("ww unlocked", o.ctx, t.acquired))
        k.join(b)
        t.fini()

    ex = run_first(scenario)
    assert ex.findings == []
    assert log == [("ww unlocked", None, 0), ("base in", None, 0)]
