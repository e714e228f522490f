"""C16: the shared helper is used by every reference design that gets userptr right.

docs/claims.md (C16): one helper (interval notifier, sequence, notifier
lock, teardown) that every reference driver passing C11, C13, C14 and C15
uses. The model decides which designs pass: each design of the
userptr bench runs the races of those claims (fork with a submission and
with a rogue job, munmap, mprotect) under PCT; every design that
comes out without an error or warning must have torn its pages down
through the helper's teardown (``userptr_teardown``), and at least one
design that does not use the helper must fail, so the rule is not vacuous.
"""

from __future__ import annotations

import dmabufsim as ds
from dmabufsim.explore import explore
from dmabufsim.scenarios.userptr_lab import DESIGNS, run_lab

#: The races of C11 (fork + a submission that looks the pages up itself), C13 (fork + a
#: rogue job through the persistent GPU VA), C14 (munmap), C15 (mprotect).
RACES = [("fork", "submit", False), ("fork", "rogue", True), ("munmap", "submit", True), ("mprotect", "submit", True)]
BUDGET = 150


def _verdict(design: str) -> tuple[bool, int]:
    """(no error found in any race by PCT within the budget, teardowns through the helper).

    PCT, because the C11 window (pages looked up before the fork, bound after
    the copy-on-write break) is a few scheduling points wide: a random walk
    hits it about once in 4,000 schedules, PCT within ten.
    """
    teardowns = 0

    for race, user, prebind in RACES:

        def scenario(k: ds.Kernel, race: str = race, user: str = user, prebind: bool = prebind) -> None:
            nonlocal teardowns
            out = run_lab(k, design, race=race, user=user, prebind=prebind)
            teardowns += out["handle"].bo.helper_teardowns

        # The rogue job's own accesses through a torn-down VA fault on purpose: an error the
        # race expects (the job lost its data), not a failure of the design.
        rogue = user == "rogue"
        report = explore(scenario, strategy="pct", budget=BUDGET, seed=1, stop_on_first=not rogue,
                         expected=["iommu-fault"] if rogue else (), confirm_cycles=False)
        if any(f.finding.is_error and not f.expected for f in report.findings):
            return False, teardowns
    return True, teardowns


def test_every_design_that_passes_c11_c13_c14_c15_tears_down_through_the_helper() -> None:
    verdicts = {d: _verdict(d) for d in DESIGNS}
    passing = sorted(d for d, (ok, _) in verdicts.items() if ok)
    assert "helper" in passing and "i915-2018" in passing
    for d in passing:
        assert verdicts[d][1] > 0, f"{d} passes C11/C13/C14/C15 without the shared helper's teardown"
    failing_without_helper = [d for d, (ok, n) in verdicts.items() if not ok and n == 0]
    assert "amdgpu-2018" in failing_without_helper
