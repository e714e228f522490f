"""The undeclared-access checker (``Config.check_accesses``, kernel.accesses A1-A5)."""

from __future__ import annotations

import pytest

import dmabufsim as ds
from dmabufsim.kernel import accesses
from dmabufsim.kernel.completion import Completion
from dmabufsim.kernel.thread import ThreadState


def _undeclared(ex: ds.Execution) -> list[ds.Finding]:
    return ex.by_kind("undeclared-access")


def _run(scenario: object, seed: int = 0, **kw: object) -> ds.Execution:
    return ds.Kernel(seed=seed, check_accesses=True, **kw).run(scenario)  # type: ignore[arg-type]


def _planted_read(k: ds.Kernel) -> None:
    c = Completion("c")

    def writer() -> None:
        k.point("poke", c.oid, True)
        c.done = 5  # declared: the point wrote c

    def reader() -> int:
        k.point("other", c.oid + 1000, False)
        return c.done  # undeclared: the step declared another object

    k.spawn(writer, name="writer")
    k.spawn(reader, name="reader")


def _planted_write(k: ds.Kernel) -> None:
    c = Completion("c")

    def writer() -> None:
        k.point("other", c.oid + 1000, True)
        c.done = 5  # undeclared write

    def reader() -> int:
        k.point("look", c.oid, False)
        return c.done  # declared

    k.spawn(writer, name="writer")
    k.spawn(reader, name="reader")


def test_a_planted_undeclared_read_is_reported_with_object_access_declarations_and_lines() -> None:
    ex = _run(_planted_read, seed=0)
    [f] = _undeclared(ex)
    assert f.kind == "undeclared-access" and f.severity == "error"
    assert f.details["object"] == "Completion#1"
    assert f.details["attribute"] == "done"
    assert f.details["access"] == "read"
    assert f.details["declared"] == "[read #1001, write exit of thread 2]"
    assert f.details["other_thread"] == "writer"
    assert f.details["other_access"] == "write"
    assert f.details["other_declared"] == "[write #1, write exit of thread 1]"
    assert f.details["where"].endswith("test_accesses.py:30")
    assert f.details["other_where"].endswith("test_accesses.py:26")
    assert f.title == (
        f"undeclared access: reader reads Completion#1.done at {f.details['where']} "
        "(step declared [read #1001, write exit of thread 2]), not ordered after writer, which wrote it at "
        f"{f.details['other_where']} (step declared [write #1, write exit of thread 1])"
    )
    assert f.rule == "accesses A4: conflicting accesses are ordered by the declared accesses"


def test_a_planted_undeclared_write_is_reported_whichever_thread_runs_first() -> None:
    titles = set()
    for seed in range(6):
        ex = _run(_planted_write, seed=seed)
        [f] = _undeclared(ex)
        assert f.details["object"] == "Completion#1" and f.details["attribute"] == "done"
        titles.add((f.details["access"], f.details["other_access"]))
    # The writer after the reader (its write is the undeclared access), and the reader
    # after the writer (its declared read meets the undeclared write).
    assert titles == {("write", "read"), ("read", "write")}


def test_declared_accesses_are_not_reported() -> None:
    def scenario(k: ds.Kernel) -> None:
        c = Completion("c")

        def writer() -> None:
            k.point("poke", c.oid, True)
            c.done += 1

        def reader() -> int:
            k.point("look", c.oid, False)
            return c.done

        k.spawn(writer, name="writer")
        k.spawn(reader, name="reader")

    for seed in range(8):
        assert _undeclared(_run(scenario, seed=seed)) == []


def test_state_protected_by_a_declared_lock_needs_no_declaration_of_its_own() -> None:
    """A4: the lock's acquire and release order the accesses between them."""

    def scenario(k: ds.Kernel) -> None:
        c = Completion("counter")
        m = ds.Mutex("m")

        def inc() -> None:
            with m:
                c.done += 1

        for i in range(3):
            k.spawn(inc, name=f"inc{i}")

    for seed in range(8):
        assert _undeclared(_run(scenario, seed=seed)) == []


def test_a_container_changed_in_a_step_is_a_write_of_its_attribute() -> None:
    def scenario(k: ds.Kernel) -> None:
        wq = ds.WaitQueue("wq")

        def adder() -> None:
            k.point("other", wq.oid + 1000, True)
            wq.waiters.append(k.current)  # undeclared: the list changes
            wq.waiters.remove(k.current)
            wq.waiters.append(k.current)

        def looker() -> int:
            k.point("look", wq.oid, False)
            return len(wq.waiters)

        k.spawn(adder, name="adder")
        k.spawn(looker, name="looker")

    seen = set()
    for seed in range(6):
        for f in _undeclared(_run(scenario, seed=seed)):
            assert f.details["object"] == "WaitQueue#1" and f.details["attribute"] == "waiters"
            seen.add(f.details["access"] if f.details["other_access"] == "read" else "read")
            if f.details["access"] == "write":
                assert f.details["where"].endswith("(the container changed in this step)")
    assert "write" in seen


def test_a_join_of_an_exited_thread_reads_its_exit() -> None:
    def scenario(k: ds.Kernel) -> None:
        c = Completion("c")

        def child() -> None:
            c.done = 1  # no point: only the join orders it

        t = k.spawn(child, name="child")
        k.join(t)
        assert c.done == 1

    for seed in range(6):
        assert _undeclared(_run(scenario, seed=seed)) == []


def test_off_nothing_is_hooked_and_on_the_hooks_go_away_after_the_execution() -> None:
    ex = ds.Kernel(seed=0).run(_planted_read)
    assert _undeclared(ex) == [] and list(accesses.iter_hooked()) == []
    _run(_planted_read)
    assert list(accesses.iter_hooked()) == []

    def crashing(k: ds.Kernel) -> None:
        Completion("c")
        raise RuntimeError("scenario bug")

    ex = _run(crashing)
    assert ex.kinds == ["exception"] and list(accesses.iter_hooked()) == []
    assert accesses._ACTIVE is None


def test_the_mode_changes_no_schedule() -> None:
    """Same seed, same choices and findings, with or without the checker (R1 of the runtime)."""
    from dmabufsim.scenarios import discover

    rows = {r.key: r for r in discover().rows}
    row = rows["C4/wait-ignore-pinned"]
    assert row.scenario is not None
    a = ds.Kernel(seed=3, **dict(row.kernel_options)).run(row.scenario)
    b = ds.Kernel(seed=3, check_accesses=True, **dict(row.kernel_options)).run(row.scenario)
    assert a.choices == b.choices and a.kinds == b.kinds and a.trace_digest == b.trace_digest


def _catalog_rows() -> list[object]:
    from dmabufsim.scenarios import discover

    return [r for r in discover().rows if r.scenario is not None and not r.same_as]


def _check_row(row: object, seeds: range) -> list[str]:
    out = []
    for seed in seeds:
        ex = ds.Kernel(seed=seed, check_accesses=True, **dict(row.kernel_options)).run(row.scenario)  # type: ignore[attr-defined]
        out += [f"{row.key} seed {seed}: {f.title}" for f in _undeclared(ex)]  # type: ignore[attr-defined]
    return out


def test_every_catalog_row_declares_what_it_touches_first_execution() -> None:
    """Both the buggy and the correct designs: no undeclared access in execution 0 of any row."""
    bad: list[str] = []
    for row in _catalog_rows():
        bad += _check_row(row, range(1))
    assert bad == []


@pytest.mark.slow
def test_every_catalog_row_declares_what_it_touches() -> None:
    bad: list[str] = []
    for row in _catalog_rows():
        bad += _check_row(row, range(1, 8))
    assert bad == []


def test_a_wake_up_that_does_not_write_what_the_thread_waits_on_is_reported() -> None:
    def scenario(k: ds.Kernel) -> None:
        c = Completion("c")

        def sleeper() -> None:
            k.point("sleep", c.oid, True)
            k.block("my_wait", c.oid)

        t = k.spawn(sleeper, name="sleeper")

        def waker() -> None:
            while t.state is not ThreadState.BLOCKED:
                k.point("poll", c.oid + 1000, False)
            k.point("other", c.oid + 2000, True)
            k.wake(t)  # the step declared another object

        k.spawn(waker, name="waker")

    found = set()
    for seed in range(4):
        for f in _undeclared(_run(scenario, seed=seed)):
            found.add(f.title.split(" at ")[0])
            assert f.details["access"] == "wake" and f.details["object"] == "#1"
            assert f.details["declared"] == "[write #2001, write exit of thread 2]"
            assert f.rule == "accesses A4: a wake-up writes what the woken thread waits on"
    assert found == {"undeclared wake-up: waker wakes sleeper, which waits on #1,"}


def test_the_watchdogs_state_is_not_model_state() -> None:
    """The soft-lockup watchdog's SIGALRM handler runs inside whichever step the wall clock
    picks: its bookkeeping is machinery, never recorded (it was reported as undeclared under load)."""
    from dmabufsim.kernel import watchdog

    assert watchdog._State not in accesses.model_classes()
