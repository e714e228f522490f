"""Interrupts and timers as schedulable events (runtime R8, opt-in ``early_timers``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import dmabufsim as ds
from dmabufsim.explore import explore

VAR = 20_000
EARLY: dict[str, Any] = {"options": {"early_timers": True}}


def device_completion(order: str) -> Callable[[ds.Kernel], None]:
    """A waiter and a device completion interrupt (a timer raising an irq).

    ``check-then-register``: the waiter checks ``done`` and only then
    registers itself -- an interrupt in between is a lost wake-up.
    ``register-then-check`` (prepare_to_wait) and ``irqsave`` (check and
    register under a spinlock the handler also takes, with interrupts off)
    are correct.
    """

    def scenario(k: ds.Kernel) -> None:
        state: dict[str, Any] = {"done": False, "waiter": None}
        lock = ds.SpinLock("dev_lock")

        def irq() -> None:
            if order == "irqsave":
                lock.lock()
            k.point("complete", VAR, True)
            state["done"] = True
            w = state["waiter"]
            if order == "irqsave":
                lock.unlock()
            if w is not None:
                k.wake(w)

        k.add_timer(1_000, lambda: k.raise_irq(irq, name="dev_irq"), name="device")

        def waiter() -> None:
            me = k.current
            if order == "register-then-check":
                k.point("register", VAR, True)
                state["waiter"] = me
            if order == "irqsave":
                lock.lock_irqsave()
            k.point("check", VAR, False)
            if state["done"]:
                if order == "irqsave":
                    lock.unlock_irqrestore()
                return
            if order != "register-then-check":
                k.point("register", VAR, True)
                state["waiter"] = me
            if order == "irqsave":
                lock.unlock_irqrestore()
            k.block("wait_done", VAR, name="done")

        k.spawn(waiter, name="waiter")

    return scenario


def test_lost_wakeup_is_invisible_without_early_timers() -> None:
    rep = explore(device_completion("check-then-register"), "dfs", budget=2000)
    assert rep.verdict == "exhausted"


def test_early_timers_find_the_lost_wakeup_and_the_token_replays() -> None:
    rep = explore(device_completion("check-then-register"), "dfs", budget=2000, kernel_options=EARLY)
    (f,) = rep.findings
    assert f.kind == "deadlock"
    assert f.finding.details["blocked"] == {"waiter": "wait_done"}
    ex = ds.Kernel(replay=f.token, **EARLY).run(device_completion("check-then-register"))
    assert ex.outcome == "deadlock"


def test_correct_waits_are_clean_with_interrupts_anywhere() -> None:
    for order in ("register-then-check", "irqsave"):
        rep = explore(device_completion(order), "dfs", budget=5000, kernel_options=EARLY)
        assert rep.verdict == "exhausted", (order, rep.summary())
        assert rep.bound == "unbounded"


def test_dpor_and_random_find_it_too() -> None:
    for strategy in ("dpor", "random"):
        rep = explore(device_completion("check-then-register"), strategy, budget=500, kernel_options=EARLY)
        assert rep.kinds() == ["deadlock"], strategy


def test_audit_agrees_with_interrupts_in_the_schedule() -> None:
    from dmabufsim.explore import audit

    for order in ("check-then-register", "register-then-check", "irqsave"):
        res = audit(device_completion(order), kernel_options=EARLY)
        assert res.ok, (order, res.summary())


def test_shrinking_removes_needless_interrupt_injections() -> None:
    from dmabufsim.explore import replay
    from dmabufsim.kernel.token import decode

    base = device_completion("check-then-register")

    def noisy(k: ds.Kernel) -> None:
        def busy() -> None:
            for _ in range(6):
                k.point("busy", VAR + 50, True)

        k.spawn(busy, name="busy")
        k.add_timer(500, lambda: None, name="noise-timer")
        base(k)

    rep = explore(noisy, "random", budget=500, kernel_options=EARLY, seed=2)
    (f,) = rep.findings
    before = replay(noisy, decode(f.original_token), **EARLY)
    after = replay(noisy, decode(f.token), **EARLY)
    assert f.shrunk
    assert after.size() < before.size()
    assert after.execution.outcome == "deadlock"
    assert after.size()[1] <= 3  # at most: the early completion interrupt, and the switches it needs
