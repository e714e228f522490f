"""Chrome / Perfetto trace of one execution (the Trace Event Format).

Models what ``ftrace`` plus ``trace-cmd`` would show of the run, as a JSON
file that loads in ui.perfetto.dev and chrome://tracing:

* every kthread is a track (thread), named ``name/tid``; daemon threads
  (device engines, workers) are grouped in a second process, so engines
  sit apart from the scenario's threads; events of no thread (timers) go
  to a ``timers`` track;
* every scheduling point is a short slice named after its operation
  (``mutex_lock``, ``dma_fence_signal``...), with the object, access and
  detail as arguments;
* every lock hold is a slice ``lock <class>`` (category ``lock``) from the
  acquisition to the matching unlock; an attempt that had to wait is first
  a slice ``wait: <class>`` (category ``lock-wait``) from the lock
  operation to the acquisition (lock_stat's ``lock_contended`` and
  ``lock_acquired``, events R3), so a blocked attempt is never drawn as a
  hold: a thread deadlocked on a lock waits for it to the end of the
  trace, and an attempt given up (``-EDEADLK``, ``-EINTR``) is a wait and
  no hold; a hold released out of nesting order (hand-over-hand) is an
  async slice, since a thread's slices must nest;
* every signal (``dma_fence_signal``, ``complete``, ``wake_up``) is
  joined by a flow arrow to each thread that was waiting on that object,
  at the thread's next event. The trace has no event for falling asleep,
  so "waiting" is read from the events: a thread waits on X from its wait
  operation on X until X is signalled, it waits on something else, or it
  operates on X again (a wait that returned at once);
* DMA accesses are instant events.

Timestamps: virtual time does not advance during CPU work (runtime R3), so
the trace uses a logical clock: event ``i`` of the execution is at
``i + now / 1000`` microseconds (one microsecond per event, plus the
virtual time in microseconds). It is strictly increasing along the trace,
keeps the order of the execution, and shows virtual sleeps and timeouts as
gaps.

Rules:

* R1: the output satisfies :func:`dmabufsim.report.traceformat.validate`
  (tested), is plain JSON (no NaN) and lists every thread of the
  execution, even one that never reached a scheduling point.
* R2: the same execution gives the same JSON, byte for byte.
* R3: no two ``lock`` slices of one lock object overlap in time: a lock
  is held by one thread at a time (shared rwsem holds excepted).
"""

from __future__ import annotations

import json
from typing import Any

from ..kernel.errors import UsageError
from ..kernel.execution import Execution
from ..kernel.trace import Event, LockMark
from .events import SIGNAL_OPS, WAIT_OPS, attempts, is_acquire, is_dma, lock_name, pair_locks

#: Duration of an operation's slice (µs); below 1 so it ends before the next event.
OP_DUR = 0.5
#: pid of the scenario's threads, and of daemon threads (engines, workers).
PID_THREADS = 1
PID_DAEMONS = 2


def _ts(i: int, ev: Event) -> float:
    return i + ev.now / 1000.0


def _mark_ts(m: LockMark) -> float:
    """A lock_stat hook's time: after the event before it (and its OP_DUR slice), before the next."""
    return m.pos - 0.25 + m.now / 1000.0


def trace_events(ex: Execution, title: str = "dmabufsim") -> dict[str, Any]:
    """The trace-event JSON object of ``ex`` (run it with ``record_trace=True``)."""
    events = ex.events
    if events is None:
        raise UsageError("this execution kept no events: run it with Kernel(..., record_trace=True)")
    daemon = {t.tid: t.daemon for t in ex.threads}

    def where(tid: int) -> tuple[int, int]:
        return (PID_DAEMONS if daemon.get(tid) else PID_THREADS, tid + 1)

    out: list[dict[str, Any]] = [
        {"name": "process_name", "ph": "M", "pid": PID_THREADS, "tid": 0, "args": {"name": f"{title}: threads"}},
        {"name": "process_sort_index", "ph": "M", "pid": PID_THREADS, "tid": 0, "args": {"sort_index": 0}},
        {"name": "thread_name", "ph": "M", "pid": PID_THREADS, "tid": 0, "args": {"name": "timers"}},
    ]
    if any(daemon.values()):
        out.append(
            {"name": "process_name", "ph": "M", "pid": PID_DAEMONS, "tid": 0,
             "args": {"name": f"{title}: engines and workers"}}
        )
        out.append({"name": "process_sort_index", "ph": "M", "pid": PID_DAEMONS, "tid": 0, "args": {"sort_index": 1}})
    for t in ex.threads:
        pid, tid = where(t.tid)
        out.append({"name": "thread_name", "ph": "M", "pid": pid, "tid": tid, "args": {"name": f"{t.name}/{t.tid}"}})
        out.append({"name": "thread_sort_index", "ph": "M", "pid": pid, "tid": tid, "args": {"sort_index": t.tid}})

    # Lock holds and waits. A hold is a slice from the acquisition (the lock
    # operation, or its lock_acquired hook when it waited) to the matching
    # unlock; a wait, from the lock operation to lock_acquired / lock_failed
    # or the end of the trace. A hold that overlaps an earlier one without
    # nesting in it (hand-over-hand locking: lock A, lock B, unlock A) cannot
    # be a slice of the thread's track; it becomes an async slice instead.
    end_ts = (len(events) + ex.now / 1000.0) if events else 0.0
    marks = ex.lock_marks
    outcome = attempts(events, marks)
    spans: list[tuple[float, float, int, int | None, str]] = []  # (start, stop, attempt, release, kind)
    for acq, rel in pair_locks(events, marks):
        start = _ts(acq, events[acq])
        stop = _ts(rel, events[rel]) + OP_DUR if rel is not None else end_ts
        a = outcome.get(acq)
        if a is not None and a.contended is not None:
            if a.acquired is None:  # still waiting when the execution ended (a deadlock)
                spans.append((start, end_ts, acq, None, "wait"))
                continue
            got = _mark_ts(a.acquired)
            spans.append((start, got, acq, None, "wait"))
            start = got
        spans.append((start, max(start, stop), acq, rel, "hold"))
    for acq, a in outcome.items():
        if a.failed is not None and a.contended is not None:  # waited, then gave up: no hold
            spans.append((_ts(acq, events[acq]), _mark_ts(a.failed), acq, None, "wait"))
    spans.sort(key=lambda h: (events[h[2]].tid, h[0], -h[1], h[4]))
    open_ends: dict[int, list[float]] = {}
    async_id = 0
    for start, stop, acq, rel, kind in spans:
        ev = events[acq]
        pid, tid = where(ev.tid)
        a = outcome.get(acq)
        args: dict[str, Any] = {"obj": ev.obj, "step": ev.step}
        if kind == "wait":
            name, cat = f"wait: {lock_name(ev)}", "lock-wait"
            args["waited_in"] = ev.op
            if a is not None and a.failed is not None:
                args["outcome"] = "gave up (lock_failed)"
            elif a is not None and a.acquired is not None:
                args["outcome"] = "acquired"
            else:
                args["outcome"] = "never acquired (still waiting when the execution ended)"
        else:
            name, cat = f"lock {lock_name(ev)}", "lock"
            args["acquired_by"] = ev.op
            args["acquired"] = "after waiting" if a is not None and a.acquired is not None else "at once"
            if rel is None:
                args["released"] = "never (held when the execution ended)"
        stack = open_ends.setdefault(ev.tid, [])
        while stack and stack[-1] <= start:
            stack.pop()
        if stack and stack[-1] < stop:
            async_id += 1
            args["nesting"] = "overlaps an outer hold without nesting (hand-over-hand)"
            common = {"name": name, "cat": cat, "id": async_id, "pid": pid, "tid": tid}
            out.append({**common, "ph": "b", "ts": start, "args": args})
            out.append({**common, "ph": "e", "ts": stop})
            continue
        stack.append(stop)
        out.append(
            {"name": name, "cat": cat, "ph": "X", "ts": start, "dur": stop - start, "pid": pid, "tid": tid,
             "args": args}
        )

    # Operations, DMA instants, and flow arrows from signallers to waiters.
    waiting_on: dict[int, int] = {}
    arrows: dict[int, list[tuple[int, int]]] = {}  # waiter tid -> [(flow id, signal index)]
    flow_id = 0
    for i, ev in enumerate(events):
        ts = _ts(i, ev)
        pid, tid = where(ev.tid) if ev.tid >= 0 else (PID_THREADS, 0)
        args = {"obj": ev.obj, "write": ev.write, "step": ev.step, "now_ns": ev.now}
        if ev.detail:
            args["detail"] = ev.detail
        pend = arrows.pop(ev.tid, None) if ev.tid >= 0 else None
        if is_dma(ev.op):
            name = f"DMA {'write' if ev.write else 'read'}" if ev.op == "dma" else ev.op
            out.append({"name": name, "cat": "dma", "ph": "i", "s": "t", "ts": ts, "pid": pid, "tid": tid,
                        "args": args})
        else:
            cat = "lock" if is_acquire(ev.op) else "op"
            out.append({"name": ev.op, "cat": cat, "ph": "X", "ts": ts, "dur": OP_DUR, "pid": pid, "tid": tid,
                        "args": args})
        if pend:
            for fid, _ in pend:
                out.append({"name": "signal", "cat": "flow", "ph": "f", "bp": "e", "id": fid, "ts": ts,
                            "pid": pid, "tid": tid})
        if ev.tid < 0:
            continue
        if ev.op in WAIT_OPS:
            waiting_on[ev.tid] = ev.obj
        elif waiting_on.get(ev.tid) == ev.obj and ev.op not in SIGNAL_OPS:
            # Back on the object itself (polling it, dropping it): the wait is over.
            del waiting_on[ev.tid]
        if ev.op in SIGNAL_OPS:
            for waiter in sorted(w for w, o in waiting_on.items() if o == ev.obj and w != ev.tid):
                flow_id += 1
                out.append({"name": "signal", "cat": "flow", "ph": "s", "id": flow_id, "ts": ts,
                            "pid": pid, "tid": tid, "args": {"obj": ev.obj, "op": ev.op}})
                arrows.setdefault(waiter, []).append((flow_id, i))
                del waiting_on[waiter]
    # A waiter that never ran again still gets the arrow's end, at the end of the trace.
    for waiter in sorted(arrows):
        pid, tid = where(waiter)
        for fid, _ in arrows[waiter]:
            out.append({"name": "signal", "cat": "flow", "ph": "f", "bp": "e", "id": fid, "ts": end_ts,
                        "pid": pid, "tid": tid})
    return {
        "traceEvents": out,
        "displayTimeUnit": "ns",
        "otherData": {
            "generator": "dmabufsim",
            "token": ex.token,
            "trace_digest": ex.trace_digest,
            "outcome": ex.outcome,
            "clock": "ts = event index + virtual ns / 1000 (microseconds)",
        },
    }


def dumps(ex: Execution, title: str = "dmabufsim") -> str:
    """The trace as a JSON string (deterministic: R2)."""
    return json.dumps(trace_events(ex, title), allow_nan=False, sort_keys=True)


def write(ex: Execution, path: str, title: str = "dmabufsim") -> None:
    """Write the trace of ``ex`` to ``path``."""
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(dumps(ex, title))
