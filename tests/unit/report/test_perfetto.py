"""Chrome/Perfetto traces: valid trace-event JSON, every thread, locks, flows (perfetto R1-R2)."""

from __future__ import annotations

import itertools
import json
import pathlib
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

import dmabufsim as ds
from dmabufsim.report import perfetto, traceformat
from dmabufsim.scenarios import basics_locking


def _waiter(c: ds.Completion, m: ds.Mutex) -> None:
    c.wait_for_completion()
    with m:
        pass


def _signaller(k: ds.Kernel, c: ds.Completion, m: ds.Mutex) -> None:
    with m:
        k.msleep(1)  # virtual time passes while the mutex is held
    c.complete()


def completion_scenario(k: ds.Kernel) -> None:
    c, m = ds.Completion("done"), ds.Mutex("state_lock")
    k.spawn(_waiter, c, m, name="waiter")
    k.spawn(_signaller, k, c, m, name="signaller")
    k.spawn(lambda: None, name="idle-engine", daemon=True)


def _names(doc: dict[str, object]) -> dict[tuple[int, int], str]:
    out = {}
    for ev in doc["traceEvents"]:  # type: ignore[attr-defined]
        if ev["ph"] == "M" and ev["name"] == "thread_name":
            out[(ev["pid"], ev["tid"])] = ev["args"]["name"]
    return out


def test_trace_is_valid_and_names_every_thread() -> None:
    ex = ds.Kernel(strategy=ds.FirstStrategy(), record_trace=True).run(completion_scenario)
    doc = perfetto.trace_events(ex)
    assert traceformat.validate(doc) == []
    names = _names(doc)
    assert sorted(names.values()) == ["idle-engine/3", "scenario/0", "signaller/2", "timers", "waiter/1"]
    assert names[(perfetto.PID_DAEMONS, 4)] == "idle-engine/3"  # engines and workers apart
    json.loads(perfetto.dumps(ex))  # strict JSON


def test_lock_holds_are_slices_and_the_completion_is_a_flow() -> None:
    ex = ds.Kernel(strategy=ds.FirstStrategy(), record_trace=True).run(completion_scenario)
    assert ex.findings == []
    evs = perfetto.trace_events(ex)["traceEvents"]
    holds = [e for e in evs if e["name"] == "lock state_lock" and e["ph"] == "X"]
    assert sorted((e["tid"], e["args"]["acquired_by"]) for e in holds) == [(2, "mutex_lock"), (3, "mutex_lock")]
    # The signaller (tid 3 on the track) held it across a 1 ms sleep: at least 1000 µs of logical time.
    assert next(e for e in holds if e["tid"] == 3)["dur"] >= 1000
    starts = [e for e in evs if e["ph"] == "s"]
    ends = [e for e in evs if e["ph"] == "f"]
    assert [(e["tid"], e["args"]["op"]) for e in starts] == [(3, "complete")]
    assert [(e["tid"], e["id"]) for e in ends] == [(2, starts[0]["id"])]
    assert ends[0]["ts"] > starts[0]["ts"]


def test_deadlocked_lock_is_held_to_the_end() -> None:
    ex = ds.Kernel(seed=2, lockdep=False, record_trace=True).run(basics_locking.abba_mutexes)
    assert ex.outcome == "deadlock"
    doc = perfetto.trace_events(ex)
    assert traceformat.validate(doc) == []
    never = [e for e in doc["traceEvents"] if e.get("args", {}).get("released", "").startswith("never")]
    assert sorted(e["name"] for e in never) == ["lock lock_A", "lock lock_B"]  # each held by one thread
    waiting = [e for e in doc["traceEvents"] if e.get("args", {}).get("outcome", "").startswith("never")]
    assert sorted(e["name"] for e in waiting) == ["wait: lock_A", "wait: lock_B"]  # and waited for by the other


def test_same_execution_same_bytes() -> None:
    a = ds.Kernel(seed=5, record_trace=True).run(completion_scenario)
    b = ds.Kernel(replay=a.token, record_trace=True).run(completion_scenario)
    assert perfetto.dumps(a) == perfetto.dumps(b)


def test_untraced_execution_is_refused() -> None:
    ex = ds.Kernel(seed=0).run(completion_scenario)
    try:
        perfetto.trace_events(ex)
    except ds.UsageError as exc:
        assert "record_trace=True" in str(exc)
    else:
        raise AssertionError("an execution without events must be refused")


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(min_value=0, max_value=10_000))
def test_any_schedule_gives_a_valid_trace(seed: int) -> None:
    for scenario in (completion_scenario, basics_locking.mutex_under_spinlock, basics_locking.abba_mutexes):
        ex = ds.Kernel(seed=seed, record_trace=True).run(scenario)
        doc = perfetto.trace_events(ex)
        assert traceformat.validate(doc) == []
        assert {t.name for t in ex.threads} <= {n.rsplit("/", 1)[0] for n in _names(doc).values()}


def test_validator_rejects_what_the_ui_would() -> None:
    ok = {"name": "x", "ph": "X", "ts": 1, "dur": 1, "pid": 1, "tid": 1}
    assert traceformat.validate({"traceEvents": [ok]}) == []
    assert traceformat.validate({"events": []}) == ["R1: the object has no 'traceEvents' list"]
    assert traceformat.validate({"traceEvents": [{**ok, "ts": float("nan")}]})[0].startswith("R1: not serialisable")
    assert traceformat.validate([{**ok, "ph": "Q"}]) == ["R2: event 0 has unknown phase 'Q'"]
    assert traceformat.validate([{**ok, "dur": -1}]) == ["R3: event 0 (X) has no non-negative dur (got -1)"]
    assert traceformat.validate([{**ok, "tid": "1"}]) == ["R2: event 0 has a non-integer tid '1'"]
    assert traceformat.validate([{**ok, "ts": -3}]) == ["R2: event 0 has no finite non-negative ts (got -3)"]
    assert traceformat.validate([{"name": "b", "ph": "B", "ts": 1, "pid": 1, "tid": 1}]) == [
        "R4: slice 'b' on pid/tid (1, 1) is never ended"
    ]
    assert traceformat.validate([{"ph": "f", "cat": "c", "id": 4, "ts": 2, "pid": 1, "tid": 1}]) == [
        "R5: event 0 (flow f) with id 4 has no earlier start"
    ]
    assert traceformat.validate([{"name": "thread_name", "ph": "M", "pid": 1, "tid": 1, "args": {}}]) == [
        "R6: event 0 (thread_name) needs args.name as a string"
    ]
    assert traceformat.validate([{**ok, "args": [1]}]) == ["R7: event 0 has args that are not an object"]


def device_scenario(k: ds.Kernel) -> None:
    from dmabufsim.device.device import Device
    from dmabufsim.kernel.gfp import GFP_KERNEL
    from dmabufsim.mm.page import alloc_page, free_page

    dev = Device("gpu0")
    page = alloc_page(GFP_KERNEL, dev)
    dev.map_pages(0x10000, [page])
    fence = dev.submit([("write", 0x10000, 7)], duration_ns=2_000)

    def waiter() -> None:
        fence.wait()  # dma_fence_wait: the job is done
        dev.unmap_pages(0x10000, 1)
        free_page(page)

    k.spawn(waiter, name="waiter")


def test_engines_dma_and_fence_flows() -> None:
    ex = ds.Kernel(strategy=ds.FirstStrategy(), record_trace=True).run(device_scenario)
    assert ex.errors == []
    doc = perfetto.trace_events(ex)
    assert traceformat.validate(doc) == []
    names = _names(doc)
    engine = [key for key, n in names.items() if n.startswith("gpu0-gfx/")]
    assert len(engine) == 1 and engine[0][0] == perfetto.PID_DAEMONS
    evs = doc["traceEvents"]
    dma = [e for e in evs if e.get("cat") == "dma"]
    assert [(e["name"], e["ph"], (e["pid"], e["tid"])) for e in dma] == [("DMA write", "i", engine[0])]
    waiter = next(key for key, n in names.items() if n.startswith("waiter/"))
    starts = {e["id"]: e for e in evs if e["ph"] == "s"}
    ends = [e for e in evs if e["ph"] == "f" and (e["pid"], e["tid"]) == waiter]
    assert len(ends) == 1 and starts[ends[0]["id"]]["args"]["op"] == "dma_fence_signal"


def _hand_over_hand(a: ds.Mutex, b: ds.Mutex, c: ds.Mutex) -> None:
    a.lock()
    b.lock()
    a.unlock()  # hand over hand: A is dropped while B is held
    c.lock()
    b.unlock()
    c.unlock()


def hand_over_hand(k: ds.Kernel) -> None:
    a, b, c = ds.Mutex("A"), ds.Mutex("B"), ds.Mutex("C")
    k.spawn(_hand_over_hand, a, b, c, name="walker")


def test_hand_over_hand_holds_stay_valid() -> None:
    ex = ds.Kernel(strategy=ds.FirstStrategy(), record_trace=True).run(hand_over_hand)
    doc = perfetto.trace_events(ex)
    assert traceformat.validate(doc) == []
    evs = doc["traceEvents"]
    slices = sorted(e["name"] for e in evs if e["ph"] == "X" and e["name"].startswith("lock "))
    asyncs = [(e["name"], e["ph"]) for e in evs if e["ph"] in ("b", "e")]
    # A nests on the thread's track; B overlaps A without nesting: async; C starts after A ended.
    assert slices == ["lock A", "lock C"] and asyncs == [("lock B", "b"), ("lock B", "e")]


def test_validator_nesting_and_async_rules() -> None:
    x = {"ph": "X", "pid": 1, "tid": 1}
    overlap = [{**x, "name": "outer", "ts": 0, "dur": 10}, {**x, "name": "inner", "ts": 5, "dur": 10}]
    assert traceformat.validate(overlap) == ["R8: slice 'inner' on pid/tid (1, 1) overlaps 'outer' without nesting"]
    nested = [{**x, "name": "outer", "ts": 0, "dur": 10}, {**x, "name": "inner", "ts": 5, "dur": 5}]
    assert traceformat.validate(nested) == []
    b = {"name": "h", "cat": "lock", "id": 1, "pid": 1, "tid": 1}
    assert traceformat.validate([{**b, "ph": "b", "ts": 1}, {**b, "ph": "e", "ts": 2}]) == []
    assert traceformat.validate([{**b, "ph": "e", "ts": 2}]) == ["R9: async end 'h' (id 1) has no begin"]
    assert traceformat.validate([{**b, "ph": "b", "ts": 2}]) == ["R9: async slice 'h' (id 1) is never ended"]


def test_every_catalog_design_gives_a_valid_trace_with_every_thread() -> None:
    from dmabufsim.scenarios import discover

    for row in discover():
        if not row.modelled or row.broken:
            continue
        assert row.scenario is not None
        ex = ds.Kernel(seed=1, record_trace=True, **row.kernel_options).run(row.scenario)
        doc = perfetto.trace_events(ex, row.key)
        assert traceformat.validate(doc) == [], row.key
        tracks = {n.rsplit("/", 1)[0] for n in _names(doc).values()}
        assert {t.name for t in ex.threads} <= tracks, row.key


# ---------------------------------------------------------------- waits are waits (perfetto R3)

ABBA_TOKEN = "dbs1.eJxjYGBkZGJiBAAAGwAI"


def _lock_slices(doc: dict[str, Any]) -> list[tuple[str, str, int, float, float]]:
    """(category, name, lock object, start, end) of every hold and wait slice, async ones included."""
    out = []
    begins: dict[tuple[str, int], dict[str, Any]] = {}
    for e in doc["traceEvents"]:
        if e.get("cat") not in ("lock", "lock-wait") or not e["name"].startswith(("lock ", "wait: ")):
            continue
        if e["ph"] == "X":
            out.append((e["cat"], e["name"], e["args"]["obj"], e["ts"], e["ts"] + e["dur"]))
        elif e["ph"] == "b":
            begins[(e["cat"], e["id"])] = e
        elif e["ph"] == "e":
            b = begins.pop((e["cat"], e["id"]))
            out.append((b["cat"], b["name"], b["args"]["obj"], b["ts"], e["ts"]))
    return sorted(out, key=lambda s: (s[2], s[3]))


def _overlapping_holds(doc: dict[str, Any], shared: frozenset[str] = frozenset()) -> list[str]:
    holds = [s for s in _lock_slices(doc) if s[0] == "lock" and s[1] not in shared]
    bad = []
    for a, b in itertools.pairwise(holds):
        if a[2] == b[2] and b[3] < a[4]:
            bad.append(f"{a[1]} #{a[2]}: [{a[3]}, {a[4]}) and [{b[3]}, {b[4]})")
    return bad


def test_abba_attempts_are_waits_not_holds() -> None:
    from dmabufsim.scenarios.catalog import load_file_module

    abba = load_file_module(str(pathlib.Path(__file__).resolve().parents[3] / "examples" / "abba.py"))
    ex = ds.Kernel(replay=ABBA_TOKEN, record_trace=True).run(abba.scenario)
    assert ex.outcome == "deadlock"
    doc = perfetto.trace_events(ex)
    assert traceformat.validate(doc) == []
    assert [(c, n, o) for c, n, o, _, _ in _lock_slices(doc)] == [
        ("lock", "lock A", 1), ("lock-wait", "wait: A", 1), ("lock", "lock B", 2), ("lock-wait", "wait: B", 2),
    ]
    waits = [e for e in doc["traceEvents"] if e.get("cat") == "lock-wait"]
    assert {e["args"]["outcome"] for e in waits} == {"never acquired (still waiting when the execution ended)"}
    assert _overlapping_holds(doc) == []


def _contended_mutexes(k: ds.Kernel) -> None:
    m = ds.Mutex("m")

    def worker() -> None:
        for _ in range(2):
            with m:
                k.msleep(1)

    for i in range(3):
        k.spawn(worker, name=f"w{i}")


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 10**6))
def test_a_waiter_holds_only_from_lock_acquired(seed: int) -> None:
    ex = ds.Kernel(seed=seed, record_trace=True).run(_contended_mutexes)
    doc = perfetto.trace_events(ex)
    assert traceformat.validate(doc) == []
    assert _overlapping_holds(doc) == []
    slices = _lock_slices(doc)
    assert sum(1 for s in slices if s[0] == "lock") == 6  # three threads, twice each
    # Every wait ends where a hold of the same thread begins (lock_acquired).
    holds = {(e["tid"], e["ts"]) for e in doc["traceEvents"] if e.get("cat") == "lock" and e["ph"] == "X"
             and e["name"] == "lock m"}
    for e in doc["traceEvents"]:
        if e.get("cat") == "lock-wait":
            assert e["args"]["outcome"] == "acquired"
            assert (e["tid"], e["ts"] + e["dur"]) in holds


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 10**6))
def test_ww_mutex_rows_hold_each_resv_once_at_a_time(seed: int) -> None:
    from dmabufsim.scenarios.catalog import discover

    for key in ("C5/shrinker-blocking-lock", "C8/drop-lru-lock"):
        row = discover().resolve(key)
        assert row.scenario is not None
        ex = ds.Kernel(seed=seed, record_trace=True, **dict(row.kernel_options)).run(row.scenario)
        doc = perfetto.trace_events(ex)
        assert traceformat.validate(doc) == []
        assert _overlapping_holds(doc) == [], key


WD = ds.WWClass("ww_trace", wait_die=True)


def _backoff(k: ds.Kernel) -> None:
    """The younger context dies on o2 (wait-die), backs off, then takes o2 with lock_slow."""
    o, o2 = ds.WWMutex(WD, "o"), ds.WWMutex(WD, "o2")
    held, release = ds.Completion("held"), ds.Completion("release")

    def older() -> None:
        t2 = ds.WWAcquireCtx(WD)
        o2.lock(t2)
        held.complete()
        release.wait_for_completion()
        k.msleep(1)
        o2.unlock()
        t2.fini()

    k.spawn(older, name="older")
    held.wait_for_completion()
    t = ds.WWAcquireCtx(WD)
    o.lock(t)
    try:
        o2.lock(t)
    except ds.EDEADLK:
        o.unlock()
    release.complete()
    o2.lock_slow(t)  # o2 is still held: this one waits
    o.lock(t)
    o.unlock()
    o2.unlock()
    t.fini()


def test_a_failed_ww_attempt_is_no_hold_and_lock_slow_waits() -> None:
    ex = ds.Kernel(strategy=ds.FirstStrategy(), record_trace=True).run(_backoff)
    assert ex.findings == []
    assert [m.what for m in ex.lock_marks or []] == ["lock_failed", "lock_contended", "lock_acquired"]
    doc = perfetto.trace_events(ex)
    assert traceformat.validate(doc) == []
    assert _overlapping_holds(doc) == []
    slices = [(c, n) for c, n, _, _, _ in _lock_slices(doc)]
    assert sorted(slices) == sorted([
        ("lock", "lock ww_trace_mutex"), ("lock", "lock ww_trace_mutex"),  # o, twice
        ("lock", "lock ww_trace_mutex"), ("lock", "lock ww_trace_mutex"),  # o2: older, then lock_slow
        ("lock-wait", "wait: ww_trace_mutex"),  # lock_slow's wait; the attempt that died is neither
    ])
    (wait,) = [e for e in doc["traceEvents"] if e.get("cat") == "lock-wait"]
    assert wait["args"]["waited_in"] == "ww_mutex_lock" and wait["args"]["outcome"] == "acquired"
