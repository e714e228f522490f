"""Classic DPOR R3: a thread asleep is woken by a step dependent on any access of its whole step.

A step is its point plus every event up to the next decision (R1). A thread
put to sleep used to carry only its point's declaration, so a step whose
events touched more (a folded release, an observer's write, a counter's
decrement) could stay asleep past a step that races with it, and its
reversal was never run: DPOR missed terminal states DFS reaches.
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import dmabufsim as ds
from dmabufsim.explore import audit

OBJS = [9_001, 9_002, 9_003]
#: One step: the point's (object, write), then an event's (object or None, write) in the same step.
Step = tuple[int, bool, "int | None", bool]


def build(programs: list[list[Step]]) -> Any:
    def scenario(k: ds.Kernel) -> None:
        mem = dict.fromkeys(OBJS, 0)
        seen: list[tuple[int, ...]] = []

        def run(tid: int, prog: list[Step]) -> None:
            out: list[int] = []
            for o1, w1, o2, w2 in prog:
                k.point("p", o1, w1)
                if w1:
                    mem[o1] = tid * 10 + len(out) + 1
                else:
                    out.append(mem[o1])
                if o2 is not None:
                    k.event("e", o2, w2)
                    if w2:
                        mem[o2] = tid * 10 + len(out) + 5
                    else:
                        out.append(mem[o2])
            seen.append((tid, *out))

        for i, p in enumerate(programs):
            k.spawn(run, i, p, name=f"t{i}")
        k.ext["explore.state"] = lambda: (tuple(sorted(mem.items())), tuple(sorted(seen)))

    return scenario


def test_a_thread_asleep_wakes_on_an_event_its_point_did_not_declare() -> None:
    """t0's step reads 9003 at its point and writes it by an event; DPOR missed three terminal
    states of this program before R3 judged a sleeping thread by its whole step."""
    progs: list[list[Step]] = [
        [(9_003, False, 9_003, True)],
        [(9_003, False, None, False)],
        [(9_003, True, 9_002, False), (9_002, False, 9_003, True)],
    ]
    res = audit(build(progs), kernel_options={"lockdep": False}, budget=5000)
    assert res.exhausted and res.ok, res.summary()


step = st.tuples(st.sampled_from(OBJS), st.booleans(), st.sampled_from([*OBJS, None]), st.booleans())


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.lists(step, min_size=1, max_size=2), min_size=2, max_size=3))
def test_dpor_reaches_every_terminal_state_of_dfs_when_events_touch_more_than_points(
        progs: list[list[Step]]) -> None:
    res = audit(build(progs), kernel_options={"lockdep": False}, budget=3000)
    if res.exhausted:
        assert res.ok, res.summary()
