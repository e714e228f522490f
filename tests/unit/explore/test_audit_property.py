"""Property: on random small lock programs, DPOR reaches exactly the terminal states plain DFS reaches."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import dmabufsim as ds
from dmabufsim.explore import audit

VAR = 30_000

#: one thread's program: ("lock", m) / ("unlock",) / ("read", v) / ("write", v)
op = st.one_of(
    st.tuples(st.just("lock"), st.integers(0, 1)),
    st.tuples(st.just("unlock")),
    st.tuples(st.just("read"), st.integers(0, 1)),
    st.tuples(st.just("write"), st.integers(0, 1)),
)
program = st.lists(op, min_size=1, max_size=4)


def program_runner(k: ds.Kernel, locks: list[Any], mem: list[int], seen: list[tuple[int, ...]],
                   threads: list[ds.KThread] | None = None,
                   var: int = VAR) -> Callable[[int, list[tuple[Any, ...]]], None]:
    """A thread body that interprets one program: ("lock", m) / ("unlock",) / ("read", v) /
    ("write", v), and with ``threads`` given ("join", n): join the n-th thread when it was
    spawned before this one. Variable v is object ``var + v``. Each thread appends (its id, a
    digest of what it read) to ``seen``."""

    def run(tid: int, prog: list[tuple[Any, ...]]) -> None:
        held: list[int] = []
        acc = 0
        for o in prog:
            if o[0] == "lock" and o[1] not in held:
                locks[o[1]].lock()
                held.append(o[1])
            elif o[0] == "unlock" and held:
                locks[held.pop()].unlock()
            elif o[0] == "read":
                k.point("read", var + o[1], False)
                acc = acc * 3 + mem[o[1]]
            elif o[0] == "write":
                k.point("write", var + o[1], True)
                mem[o[1]] = tid * 10 + acc % 7 + 1
            elif o[0] == "join" and threads is not None and o[1] < tid:
                k.join(threads[o[1]])
                acc = acc * 5 + 1
        while held:
            locks[held.pop()].unlock()
        seen.append((tid, acc))

    return run


def build(programs: list[list[tuple[Any, ...]]], lock_cls: Any = ds.Mutex) -> Any:
    def scenario(k: ds.Kernel) -> None:
        locks = [lock_cls(f"m{i}") for i in range(2)]
        mem = [0, 0]
        seen: list[tuple[int, ...]] = []
        run = program_runner(k, locks, mem, seen)
        for i, p in enumerate(programs):
            k.spawn(run, i, p, name=f"t{i}")
        k.ext["explore.state"] = lambda: (tuple(mem), tuple(sorted(seen)))

    return scenario


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(program, min_size=2, max_size=2))
def test_dpor_is_sound_on_random_lock_programs(programs: list[list[tuple[Any, ...]]]) -> None:
    res = audit(build(programs), budget=3000, kernel_options={"lockdep": False})
    if res.exhausted:
        assert res.ok, res.summary()


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(program, min_size=2, max_size=3), st.integers(0, 2))
def test_bounded_dpor_matches_bounded_dfs(programs: list[list[tuple[Any, ...]]], bound: int) -> None:
    # the Coons et al. fix (DPOR R4): same terminal states as DFS under the same preemption bound
    res = audit(build(programs), budget=3000, preemption_bound=bound, kernel_options={"lockdep": False})
    if res.exhausted:
        assert res.ok, res.summary()
