"""Lockdep-guided confirmation: turn a possible cycle into a concrete deadlock.

Lockdep reports a *possible* deadlock the first time the lock orders of a
cycle have all been seen, usually in a schedule that does not deadlock
("possible circular locking dependency detected", with its CPU0/CPU1
scenario). Random search may need many executions to hit the deadlock
itself (eight dining philosophers: hundreds for a random walk, none in
20,000 for depth-3 PCT or unbounded DFS). The report already says which
schedule to look for: every lock class of the cycle held by one thread
that then asks for the next one. None of the anchors (loom, shuttle, CHESS,
PCT) use it; DeadlockFuzzer (Joshi, Park, Naik, Sen, PLDI 2009) does the
same from a potential-deadlock cycle found by a lock-order analysis: it
pauses threads about to close the cycle.

Rules:

* R1 (parking): a thread holding cycle class ``c[i]`` whose next step
  acquires ``c[i+1]`` (the edge ``c[i] -> c[i+1]`` of the report's chain,
  closing edge included) is *parked*: it is not scheduled while any other
  thread can run. Other threads run non-preemptively, so each takes its
  first lock of the cycle and parks in turn.
* R2 (release): when only parked threads can run, the lowest one proceeds;
  once every class of the cycle is held by a parked thread, each blocks in
  turn and the runtime reports a concrete ``deadlock`` -- with its own
  replay token.
* R3 (variants): execution 0 uses the deterministic policy; later ones pick
  among unparked threads with a seeded stream (the same in any process).
  The confirmation says whether it produced a deadlock and within how many
  executions, or that it could not within the budget.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..kernel.findings import Finding
from ..kernel.runtime import Kernel
from .base import ExploreStrategy, mix_seed
from .commandline import replay_command

if TYPE_CHECKING:
    from ..kernel.thread import KThread


def _class_name(hl: Any) -> str:
    cls = getattr(hl, "cls", None)
    name = getattr(cls, "name", None)
    return str(name) if name is not None else str(hl.map.name)


class LockdepGuided(ExploreStrategy):
    """Schedules toward the deadlock of a lockdep cycle (R1-R3)."""

    name = "lockdep-guided"

    def __init__(self, chain: Sequence[str], seed: int = 0) -> None:
        super().__init__()
        if len(chain) < 2:
            raise ValueError(f"a lock cycle needs at least two classes, got {list(chain)}")
        self.chain = list(chain)
        #: class name -> the class its holder must next ask for (the cycle's edges).
        self.after = {c: self.chain[(i + 1) % len(self.chain)] for i, c in enumerate(self.chain)}
        self.seed = seed
        self._rng: random.Random | None = None

    def new_execution(self) -> bool:
        self._rng = random.Random(mix_seed(self.seed, self.index)) if self.index > 0 else None
        return True

    def parked(self, t: KThread) -> bool:
        """R1: holds ``c[i]`` and its pending step acquires ``c[i+1]``."""
        op, oid, _ = t.pending
        held = t.held
        if len(held) < 2 or "lock" not in op or "unlock" in op or held[-1].map.oid != oid:
            return False
        want = _class_name(held[-1])
        after = self.after
        return any(after.get(_class_name(h)) == want for h in held[:-1])

    def next_thread(self, runnable: Sequence[KThread], current: KThread | None) -> KThread:
        free = [t for t in runnable if not self.parked(t)]
        if not free:
            return runnable[0]  # R2
        if self._rng is not None:
            return free[int(self._rng.random() * len(free))]
        if current is not None and current in free:
            return current
        return free[0]

    def next_u64(self, bound: int) -> int:
        return self._rng.randrange(bound) if self._rng is not None and bound > 0 else 0

    def describe(self) -> str:
        return f"lockdep-guided({' -> '.join(self.chain)})"


@dataclass(frozen=True)
class Confirmation:
    """The outcome of a guided confirmation of one lockdep cycle."""

    chain: tuple[str, ...]
    confirmed: bool
    executions: int
    budget: int
    deadlock: Finding | None = None
    token: str = ""
    preemptions: int = 0

    def summary(self, scenario: str = "", *, max_steps: int | None = None) -> str:
        """One line; the replay command names ``scenario`` (commandline R1-R3)."""
        cyc = " -> ".join((*self.chain, self.chain[0]))
        if self.confirmed:
            return (f"lockdep cycle {cyc}: confirmed as a concrete deadlock in {self.executions} guided "
                    f"execution(s); replay: {replay_command(self.token, scenario, max_steps=max_steps)}")
        return f"lockdep cycle {cyc}: could not be turned into a deadlock within {self.budget} guided executions"

    def to_json(self) -> dict[str, Any]:
        return {
            "chain": list(self.chain),
            "confirmed": self.confirmed,
            "executions": self.executions,
            "budget": self.budget,
            "token": self.token,
            "preemptions": self.preemptions,
            "deadlock": self.deadlock.to_json() if self.deadlock is not None else None,
        }


def confirm(
    scenario: Callable[..., Any],
    chain: Sequence[str] | Finding,
    *,
    budget: int = 50,
    seed: int = 0,
    kernel_options: dict[str, Any] | None = None,
) -> Confirmation:
    """Try to turn the lockdep cycle ``chain`` (or a circular-locking finding) into a deadlock."""
    if isinstance(chain, Finding):
        if "chain" not in chain.details:
            raise ValueError(f"finding {chain.signature} carries no lock chain (details['chain'])")
        chain = list(chain.details["chain"])
    strat = LockdepGuided(chain, seed)
    opts = dict(kernel_options or {})
    for i in range(budget):
        strat.index = i
        ex = Kernel(strategy=strat, **opts).run(scenario)
        for f in ex.findings:
            if f.kind == "deadlock":
                return Confirmation(tuple(chain), True, i + 1, budget, f, ex.token, ex.preemptions)
    return Confirmation(tuple(chain), False, budget, budget)
