"""seqcount R6/R7: what its operations touch, for the explorers -- a retry reads only the value it
started from, a reader spinning on an open write section is no event of its own, and nothing a
reader or writer can observe is lost.

The audits compare optimal and classic DPOR with DFS (every interleaving) on random programs of
write sections (one or two under one lock hold, ``invalidate``), lockless reads retried until
they succeed, ``raw_read`` snapshots (an odd start), retries against a start value the count
never returned, and plain loads and stores; the state is every value each thread saw (the start
values, every attempt's loads, every retry's answer) and the variables at the end.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import dmabufsim as ds
from dmabufsim.explore import DFS, DPOR, OptimalDPOR, audit
from dmabufsim.explore.explorer import run_job

NO_LOCKDEP = {"lockdep": False}
VAR = 20_000


def build(writer: list[tuple[Any, ...]], readers: list[list[tuple[Any, ...]]]) -> Any:
    """One writer thread holding the seqcount's mutex across its program (write sections, two
    sections back to back, ``invalidate``, plain stores) and readers (lockless reads, ``raw_read``
    snapshots, retries of a value the count never returned, plain loads; the first reader is the
    scenario's own thread) over two variables."""

    def scenario(k: ds.Kernel) -> None:
        lock = ds.Mutex("seq_lock")
        sc = ds.SeqCount("seq", lock=lock)
        mem = [0, 0]
        seen: list[tuple[int, ...]] = []

        def store(v: int, n: int) -> None:
            k.point("store", VAR + v, True)
            mem[v] = 10 + n + 1

        def load(v: int) -> int:
            k.point("load", VAR + v, False)
            return mem[v]

        def write(prog: list[tuple[Any, ...]]) -> None:
            with lock:
                for n, o in enumerate(prog):
                    if o[0] == "wsec":  # one write section
                        with sc:
                            store(o[1], n)
                    elif o[0] == "wpair":  # two write sections, one store each
                        with sc:
                            store(0, n)
                        with sc:
                            store(1, n)
                    elif o[0] == "inval":
                        sc.invalidate()
                    elif o[0] == "store":
                        store(o[1], n)

        def read(tid: int, prog: list[tuple[Any, ...]]) -> None:
            out: list[Any] = []
            for o in prog:
                if o[0] == "read":  # a lockless read of both variables, retried until it succeeds
                    while True:
                        start = sc.read_begin()
                        out += [start, load(0), load(o[1])]
                        if not sc.read_retry(start):
                            break
                        out.append(-1)
                elif o[0] == "raw":  # raw_read_seqcount: no wait, the start may be odd
                    start = sc.raw_read()
                    out += [start, load(o[1]), sc.read_retry(start)]
                elif o[0] == "stale":  # a start value the count did not return: the whole count
                    out.append(sc.read_retry(o[1] * 2))
                elif o[0] == "load":
                    out.append(load(o[1]))
            seen.append((tid, *out))

        k.ext["explore.state"] = lambda: (tuple(mem), tuple(sorted(seen)))
        k.spawn(write, writer, name="writer")
        for i, p in enumerate(readers[1:]):
            k.spawn(read, i + 2, p, name=f"reader{i + 2}")
        read(1, readers[0])  # the first reader is the scenario's own thread

    return scenario


writer_op = st.one_of(
    st.tuples(st.sampled_from(["wsec", "store"]), st.integers(0, 1)),
    st.tuples(st.sampled_from(["wpair", "inval"])),
)
reader_op = st.tuples(st.sampled_from(["read", "raw", "stale", "load"]), st.integers(0, 1))
sc_programs = st.tuples(
    st.lists(writer_op, min_size=1, max_size=2),
    st.lists(st.lists(reader_op, min_size=1, max_size=2), min_size=1, max_size=2),
)
Programs = tuple[list[tuple[Any, ...]], list[list[tuple[Any, ...]]]]


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sc_programs)
def test_optimal_dpor_loses_no_terminal_state_on_seqcount_programs(programs: Programs) -> None:
    res = audit(build(*programs), budget=3000, kernel_options=NO_LOCKDEP, por="odpor")
    if res.exhausted:
        assert res.ok, res.summary()
        assert res.sleep_blocked == 0


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sc_programs)
def test_classic_dpor_loses_no_terminal_state_on_seqcount_programs(programs: Programs) -> None:
    res = audit(build(*programs), budget=3000, kernel_options=NO_LOCKDEP, por="dpor")
    if res.exhausted:
        assert res.ok, res.summary()


@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sc_programs)
def test_the_access_checker_finds_every_seqcount_access_declared(programs: Programs) -> None:
    """R6 loads only the start value's epoch: the undeclared-access checker, run on every
    interleaving DFS reaches, agrees that nothing else is read."""
    dfs = DFS()
    run = run_job(build(*programs), [(dfs, 400)], stop_on_first=False, coverage=False,
                  kernel_options={**NO_LOCKDEP, "check_accesses": True})
    assert [f.kind for f in run.findings] == []


def _odpor(programs: Programs) -> tuple[int, set[Any]]:
    odpor = OptimalDPOR()
    run = run_job(build(*programs), [(odpor, 5000)], stop_on_first=False, coverage=False, collect_states=True,
                  kernel_options=NO_LOCKDEP)
    assert odpor.complete and odpor.deviations == 0 and odpor.redundant == 0
    return run.executions, set(run.states)


def _dfs_states(programs: Programs, budget: int = 5000) -> set[Any]:
    dfs = DFS()
    run = run_job(build(*programs), [(dfs, budget)], stop_on_first=False, coverage=False, collect_states=True,
                  kernel_options=NO_LOCKDEP)
    assert dfs.complete
    return set(run.states)


def test_one_reader_against_one_write_section() -> None:
    """The read precedes the section, follows it, or overlaps it and retries with its second load
    before or after the store: 4 outcomes (DFS), one execution each. With the retry declared on
    the whole count (it raced with write_end too) and a spin at read_begin an event of its own,
    optimal DPOR ran 9."""
    progs: Programs = ([("wsec", 1)], [[("read", 1)]])
    n, states = _odpor(progs)
    assert states == _dfs_states(progs)
    assert (n, len(states)) == (4, 4)


def test_a_reader_against_two_sections_under_one_hold() -> None:
    """As dma_resv's writers do (a reservation, then the fence): 15 outcomes, 15 executions (94 before)."""
    progs: Programs = ([("wpair",)], [[("read", 1)]])
    n, states = _odpor(progs)
    assert (n, len(states)) == (15, 15)


@pytest.mark.slow
def test_a_reader_against_two_sections_under_one_hold_matches_dfs() -> None:
    progs: Programs = ([("wpair",)], [[("read", 1)]])
    assert _odpor(progs)[1] == _dfs_states(progs, 100_000)  # 68,189 DFS executions


def test_two_readers_against_two_sections_one_execution_per_outcome() -> None:
    """Two readers commute with each other; each retry is decided by the one write that moved the
    count off its start: 195 outcomes, 195 executions (before R6 and R7: 100,663)."""
    progs: Programs = ([("wpair",)], [[("read", 1)], [("read", 0)]])
    n, states = _odpor(progs)
    assert (n, len(states)) == (195, 195)


@pytest.mark.slow
def test_two_readers_against_two_sections_classic_dpor_agrees() -> None:
    progs: Programs = ([("wpair",)], [[("read", 1)], [("read", 0)]])
    states = _odpor(progs)[1]
    dpor = DPOR()
    run = run_job(build(*progs), [(dpor, 20_000)], stop_on_first=False, coverage=False, collect_states=True,
                  kernel_options=NO_LOCKDEP)
    assert dpor.complete and set(run.states) == states


def test_a_retry_after_the_first_write_commutes_with_the_later_ones() -> None:
    """R6 alone: raw_read and a retry with one load between, against two sections: 12 outcomes,
    12 executions (23 when the retry was ordered with every write)."""
    progs: Programs = ([("wpair",)], [[("raw", 0)]])
    n, states = _odpor(progs)
    assert states == _dfs_states(progs)
    assert (n, len(states)) == (12, 12)


def test_a_raw_read_inside_the_section_gets_an_odd_start() -> None:
    progs: Programs = ([("wsec", 1)], [[("raw", 1)]])
    n, states = _odpor(progs)
    assert states == _dfs_states(progs)
    assert (n, len(states)) == (8, 8)
    assert {st[2][1][0][1] for st in states} == {0, 1, 2}  # before, inside, after the section


def test_a_retry_of_a_value_the_count_never_had_reads_the_whole_count() -> None:
    """A start value read_begin did not return (``stale``: 2, which the count reaches after one
    section) is compared with the whole count, so it is ordered with every write."""
    progs: Programs = ([("wsec", 0)], [[("stale", 1)]])
    _n, states = _odpor(progs)
    assert states == _dfs_states(progs)
    assert {st[2][1][0][1] for st in states} == {True, False}  # before the section (0 != 2), after (2 == 2)
