"""Counterexample shrinking: the smallest schedule that still shows the finding.

A schedule is its choice sequence (the replay token). Replaying a changed
sequence is always possible: a choice naming a thread that is not runnable,
and every choice past the end, fall back to the non-preemptive default
(``ReplayStrategy``). So shrinking is search over sequences, as in
Hypothesis's shrinker (``internal/conjecture/shrinker.py``): try smaller
candidates, keep one when the same finding (same signature) reproduces.

Contract:

* R1 (order): a schedule is smaller when it has fewer preemptions, then
  fewer non-default choices (interrupt injections and random values
  included), then fewer choices.
* R2 (passes): first a preemption-bounded DPOR search (bound 0, 1, ...
  below the schedule's preemptions) for the same finding, as CHESS's
  observation that few preemptions suffice suggests; then trim the default tail; truncate before a non-default
  choice; replace one by the default; delete a choice; make another choice
  at a non-default position and let defaults run after it. Repeat until no pass
  makes progress or the replay budget is spent.
* R3 (honesty): the result is re-recorded from a real execution, replayed
  once more and checked: same signature, no divergence. The shrunk token is
  returned only then; otherwise the original stands.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..kernel.execution import Execution
from ..kernel.runtime import Kernel
from ..kernel.strategy import ReplayStrategy
from ..kernel.token import encode
from .coverage import Recorder


@dataclass(frozen=True)
class Replayed:
    """A replay of a choice list: the execution and the default choice at each position."""

    execution: Execution
    defaults: tuple[int, ...]
    diverged_at: int | None

    @property
    def choices(self) -> tuple[int, ...]:
        return tuple(self.execution.choices)

    def size(self) -> tuple[int, int, int]:
        """The order of R1."""
        ch, df = self.choices, self.defaults
        nondefault = sum(1 for i, c in enumerate(ch) if i >= len(df) or c != df[i])
        return (self.execution.preemptions, nondefault, len(ch))

    def trimmed(self) -> list[int]:
        """The choices without their default tail (same execution when replayed)."""
        ch, df = list(self.choices), self.defaults
        n = len(ch)
        while n > 0 and n - 1 < len(df) and ch[n - 1] == df[n - 1]:
            n -= 1
        return ch[:n]


def replay(scenario: Callable[..., Any], choices: list[int], **kernel_options: Any) -> Replayed:
    """Run ``scenario`` replaying ``choices`` (defaults past the end)."""
    inner = ReplayStrategy(choices)
    rec = Recorder(inner, None)
    ex = Kernel(strategy=rec, **kernel_options).run(scenario)
    return Replayed(ex, tuple(rec.defaults), inner.diverged_at)


def _bounded_search(
    scenario: Callable[..., Any], signature: str, bound: int, budget: int, kernel_options: dict[str, Any]
) -> tuple[tuple[int, ...] | None, int]:
    """DPOR with preemption bound ``bound`` until ``signature`` shows: its choices, executions used."""
    from .dpor import DPOR

    strat = DPOR(bound)
    used = 0
    while used < budget and not strat.complete and strat.new_execution():
        k = Kernel(strategy=strat, **kernel_options)
        strat.attach(k)
        ex = k.run(scenario)
        strat.end_execution(ex)
        used += 1
        if any(f.signature == signature for f in ex.findings):
            return tuple(ex.choices), used
    return None, used


@dataclass(frozen=True)
class ShrinkResult:
    """The shrunk token (or the original), with sizes before and after and replays spent."""

    token: str
    choices: tuple[int, ...]
    preemptions: int
    steps: int
    original_preemptions: int
    original_steps: int
    original_choices: int
    replays: int
    shrunk: bool


def shrink(
    scenario: Callable[..., Any],
    choices: list[int] | tuple[int, ...],
    signature: str,
    *,
    max_replays: int = 300,
    **kernel_options: Any,
) -> ShrinkResult:
    """Minimise the schedule ``choices`` while a finding with ``signature`` reproduces (R1-R3)."""
    replays = 0

    def attempt(cand: list[int]) -> Replayed | None:
        nonlocal replays
        replays += 1
        r = replay(scenario, cand, **kernel_options)
        if any(f.signature == signature for f in r.execution.findings):
            return r
        return None

    first = attempt(list(choices))
    if first is None:
        ex0 = replay(scenario, list(choices), **kernel_options).execution
        return ShrinkResult(encode(choices, ex0.scenario_id, len(ex0.choices)), tuple(choices), ex0.preemptions,
                            ex0.steps, ex0.preemptions, ex0.steps, len(choices), replays, False)
    orig = first
    best = first
    best_ch = best.trimmed()
    # Pass 0: a preemption-bounded systematic search for the same finding with fewer preemptions.
    for bound in range(best.execution.preemptions):
        found, used = _bounded_search(scenario, signature, bound, max(1, (max_replays - replays) // 2), kernel_options)
        replays += used
        if found is not None:
            r = attempt(list(found))
            if r is not None and r.size() < best.size():
                best, best_ch = r, r.trimmed()
            break
    progress = True
    while progress and replays < max_replays:
        progress = False
        positions = [i for i, c in enumerate(best_ch) if i >= len(best.defaults) or c != best.defaults[i]]
        candidates: list[list[int]] = []
        for i in reversed(positions):
            candidates.append(best_ch[:i])  # truncate before a non-default choice
        for i in reversed(positions):
            alt = list(best_ch)
            alt[i] = best.defaults[i] if i < len(best.defaults) else 0
            candidates.append(alt)  # make one choice the default
        for i in reversed(range(len(best_ch))):
            candidates.append(best_ch[:i] + best_ch[i + 1 :])  # delete one choice
        alphabet = sorted(set(best_ch))
        for i in positions:
            for v in alphabet:
                if v != best_ch[i]:
                    alt = list(best_ch)
                    alt[i] = v
                    candidates.append(alt[: i + 1])  # another choice here, defaults after it
        for cand in candidates:
            if replays >= max_replays:
                break
            r = attempt(cand)
            if r is not None and r.size() < best.size():
                best, best_ch, progress = r, r.trimmed(), True
                break
    # R3: re-record and verify
    final = replay(scenario, best_ch, **kernel_options)
    replays += 1
    ok = final.diverged_at is None and any(f.signature == signature for f in final.execution.findings)
    if not ok or final.size() >= orig.size():
        ex = orig.execution
        return ShrinkResult(ex.token, tuple(ex.choices), ex.preemptions, ex.steps, ex.preemptions, ex.steps,
                            len(ex.choices), replays, False)
    tok = encode(best_ch, final.execution.scenario_id, len(final.execution.choices))  # token R3
    oex = orig.execution
    return ShrinkResult(tok, tuple(best_ch), final.execution.preemptions, final.execution.steps,
                        oex.preemptions, oex.steps, len(oex.choices), replays, True)
