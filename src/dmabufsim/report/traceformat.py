"""A validator for the Trace Event Format (what chrome://tracing and Perfetto load).

Checks the parts of the format (Google's "Trace Event Format" document)
that make a file load and display correctly, so a test can refuse a trace
the UI would reject or draw wrongly.

Rules:

* R1: the document is a JSON object with a ``traceEvents`` list (or a bare
  list), serialisable without NaN or infinity.
* R2: every event has a known phase ``ph``; every event but ``E`` and flow
  steps has a string ``name``; ``pid`` and ``tid`` are integers; every
  event but metadata (``M``) has a finite, non-negative ``ts``.
* R3: complete events (``X``) have a non-negative ``dur``; instant events
  (``i``/``I``) a scope ``s`` of ``g``, ``p`` or ``t`` when given.
* R4: ``B``/``E`` pairs nest per thread, in time order.
* R5: flow events (``s``/``t``/``f``) carry an ``id`` and a ``cat``; every
  flow step or end follows a start with the same ``id`` and ``cat``; ``bp``
  is ``e`` when given.
* R6: metadata events are one of the known names, with ``args.name`` (a
  string) for names and ``args.sort_index`` (an int) for sort indices.
* R7: ``args``, when present, is an object.
* R8: complete events (``X``) of one thread nest: one that starts inside
  another ends inside it too (the UI drops or misdraws partial overlaps).
* R9: async slices (``b``/``e``) carry a ``cat`` and an ``id``; every end
  follows a begin with the same ``cat``, ``id`` and ``name``.
"""

from __future__ import annotations

import json
import math
from typing import Any

PHASES = frozenset("BEXiIsftMCbenNODPOvV") | {"(", ")"}
METADATA = frozenset({"process_name", "thread_name", "process_sort_index", "thread_sort_index", "process_labels"})


def _num(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def validate(doc: Any) -> list[str]:
    """Every violation of the rules above, as messages (empty: the trace is valid)."""
    errors: list[str] = []
    try:
        json.dumps(doc, allow_nan=False)
    except (TypeError, ValueError) as exc:
        return [f"R1: not serialisable as strict JSON: {exc}"]
    if isinstance(doc, dict):
        events = doc.get("traceEvents")
        if not isinstance(events, list):
            return ["R1: the object has no 'traceEvents' list"]
    elif isinstance(doc, list):
        events = doc
    else:
        return [f"R1: a trace is an object or a list, not {type(doc).__name__}"]

    stacks: dict[tuple[int, int], list[tuple[str, float]]] = {}
    flows: dict[Any, tuple[str, float]] = {}
    indexed = sorted(
        enumerate(events), key=lambda p: (p[1].get("ts", 0) if isinstance(p[1], dict) and _num(p[1].get("ts")) else 0)
    )
    for n, ev in indexed:
        where = f"event {n}"
        if not isinstance(ev, dict):
            errors.append(f"R2: {where} is not an object")
            continue
        ph = ev.get("ph")
        if ph not in PHASES:
            errors.append(f"R2: {where} has unknown phase {ph!r}")
            continue
        if ph not in ("E", "t", "f") and not isinstance(ev.get("name"), str):
            errors.append(f"R2: {where} ({ph}) has no string name")
        for field in ("pid", "tid"):
            if field in ev and (not isinstance(ev[field], int) or isinstance(ev[field], bool)):
                errors.append(f"R2: {where} has a non-integer {field} {ev[field]!r}")
        if "pid" not in ev:
            errors.append(f"R2: {where} has no pid")
        if ph != "M" and "tid" not in ev:
            errors.append(f"R2: {where} has no tid")
        if "args" in ev and not isinstance(ev["args"], dict):
            errors.append(f"R7: {where} has args that are not an object")
        if ph == "M":
            name = ev.get("name")
            args = ev.get("args", {})
            if name not in METADATA:
                errors.append(f"R6: {where} is metadata with unknown name {name!r}")
            elif name.endswith("_name") and not isinstance(args.get("name"), str):
                errors.append(f"R6: {where} ({name}) needs args.name as a string")
            elif name.endswith("sort_index") and (
                not isinstance(args.get("sort_index"), int) or isinstance(args.get("sort_index"), bool)
            ):
                errors.append(f"R6: {where} ({name}) needs args.sort_index as an integer")
            continue
        ts_raw: Any = ev.get("ts")
        if not _num(ts_raw) or ts_raw < 0:
            errors.append(f"R2: {where} has no finite non-negative ts (got {ts_raw!r})")
            continue
        ts = float(ts_raw)
        key: tuple[int, int] = (ev.get("pid", 0), ev.get("tid", 0))
        if ph == "X":
            dur: Any = ev.get("dur")
            if not _num(dur) or dur < 0:
                errors.append(f"R3: {where} (X) has no non-negative dur (got {dur!r})")
        elif ph in ("i", "I"):
            if "s" in ev and ev["s"] not in ("g", "p", "t"):
                errors.append(f"R3: {where} has instant scope {ev['s']!r}")
        elif ph == "B":
            stacks.setdefault(key, []).append((str(ev.get("name", "")), ts))
        elif ph == "E":
            st = stacks.get(key)
            if not st:
                errors.append(f"R4: {where} ends a slice on {key} but none is open")
            else:
                st.pop()
        elif ph in ("s", "t", "f"):
            if "id" not in ev or not isinstance(ev.get("cat"), str):
                errors.append(f"R5: {where} (flow {ph}) needs an id and a cat")
                continue
            if "bp" in ev and ev["bp"] != "e":
                errors.append(f"R5: {where} has binding point {ev['bp']!r}")
            fid = (ev["cat"], ev["id"])
            if ph == "s":
                flows[fid] = (str(ev.get("name", "")), ts)
            elif fid not in flows:
                errors.append(f"R5: {where} (flow {ph}) with id {ev['id']!r} has no earlier start")
    for key, st in sorted(stacks.items()):
        for name, _ in st:
            errors.append(f"R4: slice {name!r} on pid/tid {key} is never ended")
    errors.extend(_check_complete_nesting(events))
    errors.extend(_check_async(events))
    return errors


def _check_complete_nesting(events: list[Any]) -> list[str]:
    """R8: the X slices of each thread nest."""
    spans: dict[tuple[Any, Any], list[tuple[float, float, str]]] = {}
    for ev in events:
        if isinstance(ev, dict) and ev.get("ph") == "X" and _num(ev.get("ts")) and _num(ev.get("dur")):
            spans.setdefault((ev.get("pid"), ev.get("tid")), []).append(
                (float(ev["ts"]), float(ev["ts"]) + float(ev["dur"]), str(ev.get("name", "")))
            )
    errors = []
    for key in sorted(spans, key=repr):
        stack: list[tuple[float, str]] = []
        for start, end, name in sorted(spans[key], key=lambda s: (s[0], -s[1])):
            while stack and stack[-1][0] <= start:
                stack.pop()
            if stack and stack[-1][0] < end:
                errors.append(f"R8: slice {name!r} on pid/tid {key} overlaps {stack[-1][1]!r} without nesting")
                continue
            stack.append((end, name))
    return errors


def _check_async(events: list[Any]) -> list[str]:
    """R9: async begin/end pairs."""
    open_: dict[tuple[Any, Any], list[str]] = {}
    errors = []
    timed = [ev for ev in events if isinstance(ev, dict) and ev.get("ph") in ("b", "e") and _num(ev.get("ts"))]
    for ev in sorted(timed, key=lambda e: (float(e["ts"]), e["ph"] != "b")):
        if "id" not in ev or not isinstance(ev.get("cat"), str):
            errors.append(f"R9: async event {ev.get('name')!r} needs an id and a cat")
            continue
        key = (ev["cat"], ev["id"])
        if ev["ph"] == "b":
            open_.setdefault(key, []).append(str(ev.get("name", "")))
        elif not open_.get(key):
            errors.append(f"R9: async end {ev.get('name')!r} (id {ev['id']!r}) has no begin")
        elif open_[key].pop() != str(ev.get("name", "")):
            errors.append(f"R9: async end {ev.get('name')!r} (id {ev['id']!r}) does not match its begin's name")
    for key, names in sorted(open_.items(), key=repr):
        for name in names:
            errors.append(f"R9: async slice {name!r} (id {key[1]!r}) is never ended")
    return errors


def validate_file(path: str) -> list[str]:
    """:func:`validate` the JSON file at ``path``."""
    with open(path, encoding="utf-8") as fh:
        try:
            doc = json.load(fh)
        except json.JSONDecodeError as exc:
            return [f"R1: not JSON: {exc}"]
    return validate(doc)
