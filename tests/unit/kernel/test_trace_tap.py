"""Trace.tap: a raw listener that gets every event without an Event object being built."""

from __future__ import annotations

from collections.abc import Callable

import pytest

import dmabufsim as ds
from dmabufsim.kernel.trace import TAP_ONLY

from .test_park import _contended, _nested_and_mixed


@pytest.mark.parametrize("scenario", [_contended, _nested_and_mixed], ids=["contended", "nested_and_mixed"])
def test_a_tap_sees_every_event_and_changes_no_digest(scenario: Callable[[ds.Kernel], None]) -> None:
    for seed in range(10):
        recorded = ds.Kernel(seed=seed, record_trace=True).run(scenario)
        plain = ds.Kernel(seed=seed).run(scenario)
        seen: list[tuple[int, int, str, int, bool]] = []
        k = ds.Kernel(seed=seed)
        k.trace.set_tap(lambda *ev, seen=seen: seen.append(ev))
        tapped = k.run(scenario)
        assert recorded.events is not None
        events = [ev for ev in seen if ev[2] not in TAP_ONLY]  # the runtime's messages are no events
        assert events == [(e.step, e.tid, e.op, e.obj, e.write) for e in recorded.events]
        assert all(ev[2] == "lock_section" and ev[4] is False for ev in seen if ev[2] in TAP_ONLY)
        assert tapped.trace_digest == plain.trace_digest == recorded.trace_digest
        assert tapped.token == plain.token and tapped.events is None


def test_one_tap_per_trace() -> None:
    k = ds.Kernel(seed=1)
    k.trace.set_tap(lambda *ev: None)
    with pytest.raises(ValueError, match="already has a tap"):
        k.trace.set_tap(lambda *ev: None)
