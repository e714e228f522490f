"""Cost of the reports, against the execution they describe.

For a few catalog executions (the first counterexample of a lockdep row, an
isolation row, and a clean userptr run), measured in the same process:

* baseline: the replay of the execution, untraced (``Kernel(replay=token)``);
* recording: the same replay with ``record_trace=True``;
* perfetto: building the trace-event JSON of the recorded execution and
  serialising it (``report.perfetto.dumps``);
* validate: the trace-event validator on that JSON;
* text: rendering every finding in the kernel's layout.

Printed: the milliseconds of each and their ratio to the baseline. The
reports are for one execution a developer asked about, so a ratio of a
few is fine; the target is that recording costs less than 2x the run and a
Perfetto export less than 5x.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import dmabufsim as ds
from dmabufsim.report import perfetto, text, traceformat
from dmabufsim.scenarios import ClaimScenario, check, discover

ROWS = ("C5/shrinker-blocking-lock", "C13/fork-rogue", "C11/helper-fork")
REPEATS = 20


def _best(fn: Callable[[], Any]) -> float:
    best = float("inf")
    for _ in range(REPEATS):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best * 1000.0


def _measure(key: str, row: ClaimScenario) -> None:
    assert row.scenario is not None
    scenario = row.scenario
    opts = dict(row.kernel_options)
    res = check([row], jobs=1).rows[0]
    token = res.token or ds.Kernel(seed=0, **opts).run(scenario).token
    base = _best(lambda: ds.Kernel(replay=token, **opts).run(scenario))
    rec = _best(lambda: ds.Kernel(replay=token, record_trace=True, **opts).run(scenario))
    ex = ds.Kernel(replay=token, record_trace=True, **opts).run(scenario)
    doc = perfetto.trace_events(ex)
    pf = _best(lambda: perfetto.dumps(ex))
    va = _best(lambda: traceformat.validate(doc))
    tx = _best(lambda: text.render_findings(ex.findings, key))
    n = len(ex.events or [])
    print(f"{key}: {n} events, {len(doc['traceEvents'])} trace events, {len(ex.findings)} findings")
    print(f"  replay (baseline) {base:8.2f} ms   1.00x")
    for name, ms in (("record_trace", rec), ("perfetto dumps", pf), ("validate", va), ("text reports", tx)):
        print(f"  {name:17s} {ms:8.2f} ms {ms / base:6.2f}x")


def main() -> None:
    cat = discover()
    for key in ROWS:
        try:
            row = cat.get(key)
        except ds.UsageError:
            print(f"{key}: not in the catalog, skipped")
            continue
        _measure(key, row)


if __name__ == "__main__":
    main()
