"""rw_semaphore: sharing, exclusion, FIFO handoff, downgrade, trylock, killable waits."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import dmabufsim as ds
from tests.helpers import run, run_first


def test_readers_share_writer_excludes_over_seeds() -> None:
    inside: list[str] = []
    bad: list[list[str]] = []
    shared: list[bool] = []

    def reader(sem: ds.RwSem, k: ds.Kernel, i: int) -> None:
        for _ in range(2):
            with sem.reading():
                inside.append(f"r{i}")
                if any(x.startswith("w") for x in inside):
                    bad.append(list(inside))
                shared.append(sum(x.startswith("r") for x in inside) > 1)
                k.point("read", 0, False)
                inside.remove(f"r{i}")

    def writer(sem: ds.RwSem, k: ds.Kernel, i: int) -> None:
        for _ in range(2):
            with sem:
                inside.append(f"w{i}")
                if len(inside) > 1:
                    bad.append(list(inside))
                k.point("write", 0, True)
                inside.remove(f"w{i}")

    def scenario(k: ds.Kernel) -> None:
        sem = ds.RwSem("sem")
        for i in range(3):
            k.spawn(reader, sem, k, i, name=f"r{i}")
        for i in range(2):
            k.spawn(writer, sem, k, i, name=f"w{i}")

    for seed in range(30):
        ex = run(scenario, seed=seed)
        assert ex.findings == [] and ex.outcome == "completed", seed
    assert bad == []
    assert any(shared), "readers never shared the semaphore"


def test_waiting_writer_blocks_new_readers_then_readers_granted_together() -> None:
    log: list[str] = []

    def writer(sem: ds.RwSem) -> None:
        sem.down_write()
        log.append("writer in")
        sem.up_write()

    def reader(sem: ds.RwSem, name: str) -> None:
        sem.down_read()
        log.append(f"{name} in (readers={len(sem.readers)})")
        sem.up_read()

    def scenario(k: ds.Kernel) -> None:
        sem = ds.RwSem("sem")
        sem.down_read()
        w = k.spawn(writer, sem, name="w")
        k.msleep(1)  # w queues
        assert sem.is_contended()
        assert not sem.down_read_trylock()  # R3: trylock fails while anyone waits
        r1 = k.spawn(reader, sem, "r1", name="r1")
        r2 = k.spawn(reader, sem, "r2", name="r2")
        k.msleep(1)  # r1, r2 queue behind the writer
        assert [x.task.name for x in sem.waiters] == ["w", "r1", "r2"]
        log.append("main up_read")
        sem.up_read()
        for t in (w, r1, r2):
            k.join(t)

    ex = run_first(scenario)
    assert ex.findings == []
    assert log == ["main up_read", "writer in", "r1 in (readers=2)", "r2 in (readers=1)"]


def test_downgrade_write_lets_readers_in_not_writers() -> None:
    log: list[str] = []
    held_modes: list[int] = []

    def reader(sem: ds.RwSem) -> None:
        with sem.reading():
            log.append("reader in")

    def writer(sem: ds.RwSem) -> None:
        with sem.writing():
            log.append("writer in")

    def scenario(k: ds.Kernel) -> None:
        sem = ds.RwSem("sem")
        sem.down_write()
        r = k.spawn(reader, sem, name="r")
        k.msleep(1)
        w = k.spawn(writer, sem, name="w")
        k.msleep(1)
        sem.downgrade_write()
        held_modes.extend(hl.read for hl in k.current.held if hl.map is sem.dep_map)
        k.join(r)  # the reader got in while we still hold it for reading
        log.append("main still reading")
        assert sem.writer is None and sem.readers == [k.current]
        sem.up_read()
        k.join(w)

    ex = run_first(scenario)
    assert ex.findings == []
    assert held_modes == [1]
    assert log == ["reader in", "main still reading", "writer in"]


def test_trylocks() -> None:
    got: list[bool] = []

    def scenario(k: ds.Kernel) -> None:
        sem = ds.RwSem("sem")
        got.append(sem.down_read_trylock())
        got.append(sem.down_read_trylock())
        got.append(sem.down_write_trylock())
        sem.up_read()
        sem.up_read()
        got.append(sem.down_write_trylock())
        got.append(sem.down_read_trylock())
        sem.up_write()
        got.append(sem.is_locked())

    assert run_first(scenario).findings == []
    assert got == [True, True, False, True, False, False]


def test_killable_writer_leaving_lets_readers_in() -> None:
    log: list[Any] = []

    def writer(sem: ds.RwSem) -> None:
        try:
            sem.down_write_killable()
        except ds.EINTR:
            log.append("writer EINTR")

    def reader(sem: ds.RwSem) -> None:
        sem.down_read()
        log.append("reader in")
        sem.up_read()

    def scenario(k: ds.Kernel) -> None:
        sem = ds.RwSem("sem")
        sem.down_read()
        w = k.spawn(writer, sem, name="w")
        k.msleep(1)
        r = k.spawn(reader, sem, name="r")
        k.msleep(1)
        assert [x.task.name for x in sem.waiters] == ["w", "r"]
        k.send_signal(w)
        k.join(w)
        k.join(r)  # the reader was granted when the writer left the head of the queue
        log.append(sem.waiters)
        sem.up_read()

    ex = run_first(scenario)
    assert ex.findings == []
    assert log == ["writer EINTR", "reader in", []]


def test_up_read_not_held_is_bad_unlock() -> None:
    def scenario(k: ds.Kernel) -> None:
        sem = ds.RwSem("sem")
        sem.up_read()

    ex = run_first(scenario)
    assert ex.kinds == ["assertion"]
    assert ex.findings[0].title == "WARNING: bad unlock balance detected!"
    assert ex.findings[0].details["lock"] == "sem"


def test_down_read_in_atomic_is_reported() -> None:
    def scenario(k: ds.Kernel) -> None:
        s = ds.SpinLock("s")
        sem = ds.RwSem("mmap_lock")
        with s:
            sem.down_read()
            sem.up_read()

    ex = run_first(scenario)
    assert ex.kinds == ["sleep-in-atomic"]
    assert ex.findings[0].details["call"] == "down_read"
    assert ex.findings[0].details["atomic"][0]["name"] == "s"


def test_recursive_read_with_writer_queued_deadlocks() -> None:
    """Why down_read is a non-recursive read for lockdep: a writer queued in between blocks the second read."""

    def writer(sem: ds.RwSem) -> None:
        sem.down_write()
        sem.up_write()

    def scenario(k: ds.Kernel) -> None:
        sem = ds.RwSem("sem")
        sem.down_read()
        k.spawn(writer, sem, name="w")
        k.msleep(1)
        sem.down_read()

    ex = run_first(scenario)
    assert "deadlock" in ex.kinds
    dl = ex.by_kind("deadlock")[0]
    assert dl.details["waiting_for"] == {"scenario": "sem", "w": "sem"}


def test_lockdep_modes() -> None:
    modes: list[tuple[str, int, bool]] = []

    def scenario(k: ds.Kernel) -> None:
        sem = ds.RwSem("sem")
        sem.down_read()
        assert sem.down_read_trylock()
        modes.extend((hl.map.name, hl.read, hl.trylock) for hl in k.current.held)
        sem.up_read()
        sem.up_read()
        sem.down_write()
        modes.extend((hl.map.name, hl.read, hl.trylock) for hl in k.current.held)
        sem.up_write()
        assert k.current.held == []

    assert run_first(scenario).findings == []
    assert modes == [("sem", 1, False), ("sem", 1, True), ("sem", 0, False)]


@settings(max_examples=50, deadline=None)
@given(
    kinds=st.lists(st.sampled_from(["r", "w", "d", "tr", "tw"]), min_size=2, max_size=6),
    seed=st.integers(0, 2**16),
)
def test_exclusion_invariant_property(kinds: list[str], seed: int) -> None:
    """Any mix of readers, writers, downgraders and trylockers: exclusion holds, everyone finishes."""
    state = {"r": 0, "w": 0}
    bad: list[str] = []

    def check(k: ds.Kernel, what: str) -> None:
        if state["w"] > 1 or (state["w"] and state["r"]):
            bad.append(what)
        k.point("inside", 0, False)

    def worker(sem: ds.RwSem, k: ds.Kernel, kind: str) -> None:
        if kind == "r" or (kind == "tr" and sem.down_read_trylock()):
            if kind == "r":
                sem.down_read()
            state["r"] += 1
            check(k, kind)
            state["r"] -= 1
            sem.up_read()
        elif kind in ("w", "d") or (kind == "tw" and sem.down_write_trylock()):
            if kind != "tw":
                sem.down_write()
            state["w"] += 1
            check(k, kind)
            state["w"] -= 1
            if kind == "d":
                sem.downgrade_write()
                state["r"] += 1
                check(k, "downgraded")
                state["r"] -= 1
                sem.up_read()
            else:
                sem.up_write()

    def scenario(k: ds.Kernel) -> None:
        sem = ds.RwSem("sem")
        for i, kind in enumerate(kinds):
            k.spawn(worker, sem, k, kind, name=f"{kind}{i}")

    ex = run(scenario, seed=seed)
    assert ex.findings == [] and ex.outcome == "completed"
    assert bad == []


@pytest.mark.parametrize("variant", ["down_read_killable", "down_read_interruptible"])
def test_killable_reader(variant: str) -> None:
    got: list[str] = []

    def reader(sem: ds.RwSem) -> None:
        try:
            getattr(sem, variant)()
        except ds.EINTR:
            got.append("EINTR")

    def scenario(k: ds.Kernel) -> None:
        sem = ds.RwSem("sem")
        sem.down_write()
        r = k.spawn(reader, sem, name="r")
        k.msleep(1)
        k.send_signal(r)
        k.join(r)
        assert sem.waiters == []
        sem.up_write()

    assert run_first(scenario).findings == []
    assert got == ["EINTR"]


def test_trace_events_carry_the_class_name() -> None:
    """Every event names the class; R8: the semaphore's own object (owner and queue) and the
    reader count's pseudo-object, read by readers that get in, written by writers."""
    from dmabufsim.kernel.trace import refcount_oid

    oids: dict[str, int] = {}

    def scenario(k: ds.Kernel) -> None:
        sem = ds.RwSem("mmap_lock")
        oids["sem"] = sem.oid
        with sem.reading():
            pass
        sem.down_write()
        sem.downgrade_write()
        sem.up_read()
        assert sem.down_write_trylock()
        sem.up_write()

    ex = run_first(scenario, record_trace=True)
    assert ex.findings == []
    assert ex.events is not None
    names = {oids["sem"]: "sem", refcount_oid(oids["sem"]): "count"}
    assert [(e.op, e.detail, names[e.obj], e.write) for e in ex.events] == [
        ("down_read", "mmap_lock", "sem", False),
        ("down_read", "mmap_lock", "count", False),
        ("up_read", "mmap_lock", "sem", False),
        ("up_read", "mmap_lock", "count", False),
        ("down_write", "mmap_lock", "sem", True),
        ("down_write", "mmap_lock", "count", True),
        ("downgrade_write", "mmap_lock", "sem", True),
        ("downgrade_write", "mmap_lock", "count", True),
        ("up_read", "mmap_lock", "sem", False),
        ("up_read", "mmap_lock", "count", False),
        ("down_write_trylock", "mmap_lock", "sem", True),
        ("down_write_trylock", "mmap_lock", "count", True),
        ("up_write", "mmap_lock", "sem", True),
    ]
