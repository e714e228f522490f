"""rwsem R8: what its operations touch, for the explorers -- readers of an uncontended
semaphore commute, and nothing whose outcome depends on the readers is lost.

The audits compare optimal and classic DPOR with DFS (every interleaving) on random programs
of read and write sections, trylocks and holds to the end of the thread.
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import dmabufsim as ds
from dmabufsim.explore import DPOR, OptimalDPOR, audit
from dmabufsim.explore.explorer import run_job

NO_LOCKDEP = {"lockdep": False}
VAR = 10_000


def build(programs: list[list[tuple[Any, ...]]]) -> Any:
    """Threads over one rwsem and two variables; the state is every value and trylock result
    each thread saw, the variables at the end, and who was still blocked."""

    def scenario(k: ds.Kernel) -> None:
        sem = ds.RwSem("sem")
        mem = [0, 0]
        seen: list[tuple[int, ...]] = []

        def run(tid: int, prog: list[tuple[Any, ...]]) -> None:
            out: list[int] = []
            held: list[str] = []
            for o in prog:
                if o[0] == "rsec":
                    with sem.reading():
                        k.point("read", VAR + o[1], False)
                        out.append(mem[o[1]])
                elif o[0] == "wsec":
                    with sem.writing():
                        k.point("write", VAR + o[1], True)
                        mem[o[1]] = tid * 10 + len(out) + 1
                elif o[0] == "hold_r" and not held:
                    sem.down_read()
                    held.append("r")
                elif o[0] == "hold_w" and not held:
                    sem.down_write()
                    held.append("w")
                elif o[0] == "try_r" and not held:
                    ok = sem.down_read_trylock()
                    out.append(2 + ok)
                    if ok:
                        held.append("r")
                elif o[0] == "try_w" and not held:
                    ok = sem.down_write_trylock()
                    out.append(4 + ok)
                    if ok:
                        held.append("w")
                elif o[0] == "read":
                    k.point("read", VAR + o[1], False)
                    out.append(mem[o[1]])
                elif o[0] == "write":
                    k.point("write", VAR + o[1], True)
                    mem[o[1]] = tid * 10 + len(out) + 1
            for h in held:
                if h == "r":
                    sem.up_read()
                else:
                    sem.up_write()
            seen.append((tid, *out))

        for i, p in enumerate(programs):
            k.spawn(run, i, p, name=f"t{i}")
        k.ext["explore.state"] = lambda: (tuple(mem), tuple(sorted(seen)))

    return scenario


rw_op = st.one_of(
    st.tuples(st.sampled_from(["rsec", "wsec", "read", "write"]), st.integers(0, 1)),
    st.tuples(st.sampled_from(["hold_r", "hold_w", "try_r", "try_w"])),
)
rw_programs = st.lists(st.lists(rw_op, min_size=1, max_size=3), min_size=2, max_size=3)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rw_programs)
def test_optimal_dpor_loses_no_terminal_state_on_rwsem_programs(programs: list[list[tuple[Any, ...]]]) -> None:
    res = audit(build(programs), budget=3000, kernel_options=NO_LOCKDEP, por="odpor")
    if res.exhausted:
        assert res.ok, res.summary()
        assert res.sleep_blocked == 0


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rw_programs)
def test_classic_dpor_loses_no_terminal_state_on_rwsem_programs(programs: list[list[tuple[Any, ...]]]) -> None:
    res = audit(build(programs), budget=3000, kernel_options=NO_LOCKDEP, por="dpor")
    if res.exhausted:
        assert res.ok, res.summary()


def _executions(programs: list[list[tuple[Any, ...]]]) -> int:
    odpor = OptimalDPOR()
    run = run_job(build(programs), [(odpor, 1000)], stop_on_first=False, coverage=False,
                  kernel_options=NO_LOCKDEP)
    assert odpor.complete and odpor.deviations == 0
    return run.executions


def test_readers_of_an_uncontended_rwsem_commute() -> None:
    """Three threads each reading a variable inside a read section: the sections commute (one
    trace); with every reader's operations declared as writes of the semaphore it took 90
    executions."""
    assert _executions([[("rsec", 0)], [("rsec", 1)], [("rsec", 0)]]) == 1


def test_a_writer_is_ordered_with_every_reader() -> None:
    """A write section and two read sections of the variable it writes: classic DPOR's four
    outcomes (each reader before or after the writer, up to the readers' order) and no other,
    in 32 executions where 58 were needed with readers declared as writes."""
    progs = [[("wsec", 0)], [("rsec", 0)], [("rsec", 0)]]
    states = []
    for s in (DPOR(), OptimalDPOR()):
        run = run_job(build(progs), [(s, 5000)], stop_on_first=False, coverage=False, collect_states=True,
                      kernel_options=NO_LOCKDEP)
        assert s.complete
        states.append({st[2] for st in run.states})
    assert states[0] == states[1] and len(states[0]) == 4
    assert _executions(progs) == 32
