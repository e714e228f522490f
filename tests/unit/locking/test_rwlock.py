"""rwlock_t (the queued rwlock): sharing, exclusion, FIFO queueing, interrupt readers, trylocks."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

import dmabufsim as ds
from dmabufsim.kernel.thread import KThread, ThreadState
from tests.helpers import run, run_first


def _cpu_relax_until(k: ds.Kernel, cond: Any) -> None:
    """Spin at scheduling points (atomic context allows it) until ``cond()`` holds."""
    while not cond():
        k.point("cpu_relax", 0, False)


def _exited(t: KThread) -> bool:
    return t.state is ThreadState.EXITED


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), readers=st.integers(1, 3), writers=st.integers(1, 2))
def test_readers_share_writer_excludes(seed: int, readers: int, writers: int) -> None:
    """R2: in every schedule, a writer is alone inside and readers never meet a writer."""
    inside: list[str] = []
    bad: list[list[str]] = []

    def reader(lock: ds.RwLock, k: ds.Kernel, i: int) -> None:
        for _ in range(2):
            lock.read_lock()
            inside.append(f"r{i}")
            if any(x.startswith("w") for x in inside):
                bad.append(list(inside))
            k.point("read", 0, False)
            inside.remove(f"r{i}")
            lock.read_unlock()

    def writer(lock: ds.RwLock, k: ds.Kernel, i: int) -> None:
        for _ in range(2):
            lock.write_lock_irq()
            inside.append(f"w{i}")
            if len(inside) > 1:
                bad.append(list(inside))
            k.point("write", 0, True)
            inside.remove(f"w{i}")
            lock.write_unlock_irq()

    def scenario(k: ds.Kernel) -> None:
        lock = ds.RwLock("lock")
        for i in range(readers):
            k.spawn(reader, lock, k, i, name=f"r{i}")
        for i in range(writers):
            k.spawn(writer, lock, k, i, name=f"w{i}")

    ex = run(scenario, seed=seed)
    assert (ex.outcome, ex.findings, bad) == ("completed", [], [])


def test_process_reader_queues_behind_waiting_writer() -> None:
    """R2: with a writer queued, a new process-context reader queues behind it (FIFO)."""
    log: list[str] = []

    def writer(lock: ds.RwLock) -> None:
        lock.write_lock()
        log.append("writer in")
        lock.write_unlock()

    def reader(lock: ds.RwLock) -> None:
        lock.read_lock()
        log.append("reader in")
        lock.read_unlock()

    def scenario(k: ds.Kernel) -> None:
        lock = ds.RwLock("lock")
        lock.read_lock()
        w = k.spawn(writer, lock, name="w")
        _cpu_relax_until(k, lock.is_contended)
        r = k.spawn(reader, lock, name="r")
        _cpu_relax_until(k, lambda: len(lock.queue) == 2)
        assert [(x.task.name, x.write) for x in lock.queue] == [("w", True), ("r", False)]
        assert lock.read_trylock()  # R5: queued_read_trylock ignores the waiters
        lock.read_unlock()
        assert not lock.write_trylock()
        log.append("main read_unlock")
        lock.read_unlock()
        _cpu_relax_until(k, lambda: _exited(w) and _exited(r))

    for seed in range(5):
        log.clear()
        ex = run(scenario, seed=seed)
        assert (ex.outcome, ex.findings) == ("completed", [])
        assert log == ["main read_unlock", "writer in", "reader in"]


def test_interrupt_reader_overtakes_waiting_writer() -> None:
    """R3: a reader in hardirq context does not queue behind the waiting writer."""
    log: list[str] = []

    def writer(lock: ds.RwLock) -> None:
        lock.write_lock_irq()
        log.append("writer in")
        lock.write_unlock_irq()

    def scenario(k: ds.Kernel) -> None:
        lock = ds.RwLock("lock")
        lock.read_lock()
        w = k.spawn(writer, lock, name="w")
        _cpu_relax_until(k, lock.is_contended)

        def handler() -> None:
            lock.read_lock()
            log.append("irq reader in")
            lock.read_unlock()

        irq = k.raise_irq(handler)
        _cpu_relax_until(k, lambda: _exited(irq))
        log.append("main read_unlock")
        lock.read_unlock()
        _cpu_relax_until(k, lambda: _exited(w))

    ex = run(scenario, seed=3)
    assert (ex.outcome, ex.findings) == ("completed", [])
    assert log == ["irq reader in", "main read_unlock", "writer in"]


def test_interrupt_reader_spins_while_a_writer_holds() -> None:
    """R3: an interrupt reader still waits for a writer that holds the lock."""
    log: list[str] = []

    def scenario(k: ds.Kernel) -> None:
        lock = ds.RwLock("lock")
        lock.write_lock_irq()  # taken in a hardirq: writers disable interrupts

        def handler() -> None:
            lock.read_lock()
            log.append("irq reader in")
            lock.read_unlock()

        irq = k.raise_irq(handler)
        _cpu_relax_until(k, lambda: irq.state is ThreadState.BLOCKED)
        log.append("main write_unlock")
        lock.write_unlock_irq()
        _cpu_relax_until(k, lambda: _exited(irq))

    ex = run(scenario, seed=1)
    assert (ex.outcome, ex.findings) == ("completed", [])
    assert log == ["main write_unlock", "irq reader in"]


def test_write_lock_twice_is_an_aa_deadlock() -> None:
    """The writer spins on itself forever: lockdep reports it, and the thread never gets it."""

    def scenario(k: ds.Kernel) -> None:
        lock = ds.RwLock("A")
        lock.write_lock()
        lock.write_lock()

    ex = run_first(scenario, prime_lockdep=False)
    assert ex.outcome == "deadlock"
    assert (ex.findings[0].kind, ex.findings[0].details.get("chain")) == ("recursive-locking", ["A", "A"])


def test_unbalanced_unlock_is_reported_and_changes_nothing() -> None:
    def scenario(k: ds.Kernel) -> None:
        lock = ds.RwLock("A")
        lock.read_lock()
        lock.write_unlock()  # not the writer
        assert lock.readers == [k.current] and lock.writer is None
        lock.read_unlock()

    ex = run_first(scenario, prime_lockdep=False)
    assert [(f.kind, f.title) for f in ex.findings] == [("assertion", "WARNING: bad unlock balance detected!")]
