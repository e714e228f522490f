"""The report of an exploration: distinct findings, phases, coverage and the verdict.

Rules:

* R1 (three verdicts, never confused): ``finding`` (at least one bug, each
  with a token); ``exhausted`` (no bug, and a systematic strategy explored
  its whole space -- the bound is stated); ``inconclusive`` (no bug, and a
  budget ended the search first). ``ok`` is never True and the exit code
  never 0 for an inconclusive run.
* R1a (who exhausted it): ``strategy`` is the run's strategy as asked for
  (``portfolio`` stays ``portfolio``); an exhausted portfolio names the
  phase that exhausted its space in ``exhausted_by`` and in the verdict
  line, never in place of the run's strategy.
* R2 (exit codes): 0 exhausted (or only expected findings); 1 an unexpected
  finding, nondeterminism, or an expected finding missing after an
  exhausted search; 3 inconclusive.
* R3 (confirmed): a lockdep cycle's confirmation (explorer R8) that turned
  it into a concrete deadlock is a finding the run *showed*: it counts for
  :meth:`Report.showed` (what ``assert_finds`` asks) as a ``deadlock``
  with the confirmation's own token, found by the guided strategy. It
  stays attached to its cycle's finding and never changes the verdict.
* R4 (guarantee): a run without a bug says the strongest guarantee it
  reached (:class:`Guarantee`), strongest first: ``proved`` -- a systematic
  phase explored every schedule of this configuration (exhausted, no
  preemption bound or value cap cut anything, no wakeup sequence dropped;
  for optimal DPOR the executions are the Mazurkiewicz traces);
  ``bounded`` -- every schedule with at most ``k`` preemptions ran (the
  highest bound a phase finished, even if the budget then ended a deeper
  one); ``sampled`` -- ``N`` executions, nothing found. A run with
  uncontrolled nondeterminism proves nothing (``sampled``). The guarantee
  is independent of the verdict: an inconclusive ``dpor`` run may still
  have exhausted bound 2.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass, field
from typing import Any

from ..kernel.findings import Finding
from .commandline import replay_command
from .coverage import Coverage
from .guided import Confirmation
from .race_stats import RaceStats

VERDICTS = ("finding", "exhausted", "inconclusive")

EXIT_OK = 0
EXIT_FINDING = 1
EXIT_INCONCLUSIVE = 3

class Guarantee(enum.Enum):
    """How much of the schedule space a clean run covered (R4), strongest first."""

    PROVED = "proved"
    BOUNDED = "bounded"
    SAMPLED = "sampled"

    @property
    def rank(self) -> int:
        """0 for the strongest (``proved``)."""
        return list(Guarantee).index(self)


@dataclass(frozen=True)
class Assurance:
    """The guarantee a run without a bug reached, with what earned it (R4).

    ``strategy``: the phase that earned it (every phase for ``sampled``);
    ``executions``: that phase's executions (all of the run's for
    ``sampled``); ``bound``: ``k`` of ``bounded``; ``traces``: the
    executions are the Mazurkiewicz traces (optimal DPOR, nothing
    redundant); ``dropped``: wakeup sequences an exhausted optimal DPOR
    search dropped (then not ``proved``); ``note``: why a stronger
    guarantee was not reached, when a phase came close.
    """

    guarantee: Guarantee
    strategy: str
    executions: int
    bound: int | None = None
    traces: bool = False
    dropped: int = 0
    note: str = ""

    @property
    def proved(self) -> bool:
        return self.guarantee is Guarantee.PROVED

    def describe(self) -> str:
        """``proved: all schedules of this configuration (odpor, 16 Mazurkiewicz traces, unbounded)``."""
        n = f"{self.executions:,}"
        if self.guarantee is Guarantee.PROVED:
            unit = "Mazurkiewicz trace" if self.traces else "execution"
            unit += "s" if self.executions != 1 else ""
            return f"proved: all schedules of this configuration ({self.strategy}, {n} {unit}, unbounded)"
        if self.guarantee is Guarantee.BOUNDED:
            k = self.bound
            text = f"exhausted up to {k} preemption{'s' if k != 1 else ''} ({self.strategy}, {n} executions)"
        else:
            text = f"{n} sample{'s' if self.executions != 1 else ''}, nothing found ({self.strategy})"
        return text + (f"; {self.note}" if self.note else "")

    def short(self) -> str:
        """A table cell: ``proved (16 Mazurkiewicz traces)``, ``up to 2 preemptions``, ``200 samples``."""
        n = f"{self.executions:,}"
        if self.guarantee is Guarantee.PROVED:
            unit = "Mazurkiewicz trace" if self.traces else "execution"
            return f"proved ({n} {unit}{'s' if self.executions != 1 else ''})"
        if self.guarantee is Guarantee.BOUNDED:
            return f"up to {self.bound} preemption{'s' if self.bound != 1 else ''}"
        return f"{n} sample{'s' if self.executions != 1 else ''}"

    def to_json(self) -> dict[str, Any]:
        return {
            "guarantee": self.guarantee.value,
            "strategy": self.strategy,
            "executions": self.executions,
            "bound": self.bound,
            "traces": self.traces,
            "dropped": self.dropped,
            "note": self.note,
            "text": self.describe(),
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Assurance:
        return cls(Guarantee(d["guarantee"]), str(d["strategy"]), int(d["executions"]), d.get("bound"),
                   bool(d.get("traces", False)), int(d.get("dropped", 0)), str(d.get("note", "")))


def assurance_of(phases: list[PhaseResult], executions: int, strategy: str, nondeterminism: bool) -> Assurance:
    """The strongest guarantee the phases of a run reached (R4)."""
    if not nondeterminism:
        for p in phases:
            if p.proved:
                return Assurance(Guarantee.PROVED, p.strategy.split("(")[0], p.executions,
                                 traces=p.one_per_trace, dropped=p.dropped)
    notes = [f"{p.strategy.split('(')[0]} exhausted but dropped {p.dropped} wakeup sequence(s), so proves nothing"
             for p in phases if p.exhausted and p.dropped]
    note = "; ".join(notes)
    bounded = [p for p in phases if p.bound_reached >= 0]
    if bounded and not nondeterminism:
        best = max(bounded, key=lambda p: p.bound_reached)
        return Assurance(Guarantee.BOUNDED, best.strategy.split("(")[0], best.executions,
                         bound=best.bound_reached, note=note)
    return Assurance(Guarantee.SAMPLED, strategy, executions, note=note)


@dataclass
class ExploredFinding:
    """One distinct finding of an exploration (R2).

    ``token`` replays the (shrunk) schedule; ``original_token`` the
    execution that found it; ``strategy`` the strategy that found it;
    ``execution`` its index within that strategy's run; ``occurrences``
    how many executions showed it.
    """

    finding: Finding
    token: str
    original_token: str
    strategy: str
    execution: int
    occurrences: int = 1
    expected: bool = False
    shrunk: bool = False
    preemptions: int = 0
    original_preemptions: int = 0
    steps: int = 0
    trace_digest: str = ""
    replay_ok: bool = True
    diverged_at: int | None = None
    #: For a lockdep cycle: the guided attempt to make it a concrete deadlock (R8).
    confirmation: Confirmation | None = None

    @property
    def kind(self) -> str:
        return self.finding.kind

    @property
    def signature(self) -> str:
        return self.finding.signature

    def to_json(self) -> dict[str, Any]:
        d = self.finding.to_json()
        d["token"] = self.token
        d.update(
            {
                "original_token": self.original_token,
                "strategy": self.strategy,
                "execution": self.execution,
                "occurrences": self.occurrences,
                "expected": self.expected,
                "shrunk": self.shrunk,
                "preemptions": self.preemptions,
                "original_preemptions": self.original_preemptions,
                "steps": self.steps,
                "replay_ok": self.replay_ok,
                "diverged_at": self.diverged_at,
                "confirmation": self.confirmation.to_json() if self.confirmation is not None else None,
            }
        )
        return d


@dataclass
class PhaseResult:
    """One strategy's part of a run: executions, time, first finding, exhaustion."""

    strategy: str
    executions: int = 0
    elapsed: float = 0.0
    first_finding_at: int | None = None
    first_finding_time: float | None = None
    exhausted: bool = False
    bound: str = ""
    sleep_blocked: int = 0
    #: The highest preemption bound this phase finished (-1: none; R4).
    bound_reached: int = -1
    #: Exhausted with nothing cut or dropped: every schedule ran (R4).
    proved: bool = False
    #: Wakeup sequences an optimal DPOR phase dropped.
    dropped: int = 0
    #: Each execution is one Mazurkiewicz trace (optimal DPOR).
    one_per_trace: bool = False

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class Report:
    """The result of an exploration. See the module Rules for the verdicts."""

    scenario: str
    strategy: str
    verdict: str = "inconclusive"
    findings: list[ExploredFinding] = field(default_factory=list)
    info: list[ExploredFinding] = field(default_factory=list)
    executions: int = 0
    elapsed: float = 0.0
    bound: str = ""
    #: The phase whose space was exhausted, when it is not the run's strategy itself (R1a).
    exhausted_by: str = ""
    reason: str = ""
    phases: list[PhaseResult] = field(default_factory=list)
    coverage: Coverage = field(default_factory=Coverage)
    expected: tuple[str, ...] = ()
    jobs: int = 1
    nondeterminism: list[str] = field(default_factory=list)
    #: The ``--max-steps`` of the search, for the replay commands (commandline R2).
    max_steps: int | None = None
    #: The strongest guarantee reached when no bug was found (R4); None with a bug.
    assurance: Assurance | None = None
    #: Optimal DPOR's race statistics when asked for (``race_stats.py``); else None.
    races: RaceStats | None = None
    #: How many of their rows the text and JSON show.
    race_top: int = 10

    @property
    def unexpected(self) -> list[ExploredFinding]:
        """Findings the scenario does not expect (R3)."""
        return [f for f in self.findings if not f.expected]

    @property
    def missing_expected(self) -> list[str]:
        """Expected kinds/signatures no finding matched."""
        got = {f.kind for f in self.findings} | {f.signature for f in self.findings}
        return [e for e in self.expected if e not in got]

    @property
    def inconclusive(self) -> bool:
        return self.verdict == "inconclusive"

    @property
    def ok(self) -> bool:
        """True only for a conclusive run matching expectations (never when inconclusive, R1)."""
        if self.unexpected or self.nondeterminism:
            return False
        if self.missing_expected:
            return False
        return self.verdict == "exhausted" or (self.verdict == "finding" and not self.unexpected)

    @property
    def exit_code(self) -> int:
        """0 ok; 1 an unexpected finding, an expected one missing, or nondeterminism; 3 inconclusive."""
        if self.unexpected or self.nondeterminism:
            return EXIT_FINDING
        if self.verdict == "inconclusive" or (self.missing_expected and self.verdict != "exhausted"):
            return EXIT_INCONCLUSIVE
        if self.missing_expected:
            return EXIT_FINDING
        return EXIT_OK

    def kinds(self) -> list[str]:
        return [f.kind for f in self.findings]

    def by_kind(self, kind: str) -> list[ExploredFinding]:
        return [f for f in self.findings if f.kind == kind]

    def showed(self, kind: str) -> list[ExploredFinding]:
        """The findings of ``kind``, then the concrete findings of ``kind`` that confirmed a lockdep cycle (R3)."""
        out = self.by_kind(kind)
        for f in self.findings:
            c = f.confirmation
            if c is not None and c.confirmed and c.deadlock is not None and c.deadlock.kind == kind:
                out.append(ExploredFinding(
                    finding=c.deadlock, token=c.token, original_token=c.token,
                    strategy=f"lockdep-guided({' -> '.join(c.chain)})", execution=c.executions - 1,
                    expected=f.expected, preemptions=c.preemptions, original_preemptions=c.preemptions,
                ))
        return out

    def verdict_line(self) -> str:
        """One sentence that says exactly what was found or how much was searched."""
        n = f"{self.executions:,} execution{'s' if self.executions != 1 else ''}"
        t = f"{self.elapsed:.2f} s"
        if self.verdict == "finding":
            kinds = ", ".join(sorted({f.kind for f in self.findings}))
            part = " (interrupted: partial, not replay-checked or shrunk)" if self.reason == "interrupted" else ""
            return f"finding: {len(self.findings)} distinct ({kinds}) in {n}, {t}{part}"
        g = f"; {self.assurance.describe()}" if self.assurance is not None else ""
        if self.verdict == "exhausted":
            who = f"{self.exhausted_by} phase of {self.strategy}" if self.exhausted_by else self.strategy
            return f"no finding, space exhausted: {who}, {self.bound}, {n}, exhausted ({t}){g}"
        return f"inconclusive: no finding within budget ({self.reason}): {self.strategy}, {n}, {t}{g}"

    def summary(self) -> str:
        """The plain-text report."""
        lines = [f"explore {self.scenario} with {self.strategy} (jobs={self.jobs})"]
        for p in self.phases:
            ff = "-" if p.first_finding_at is None else f"first finding at execution {p.first_finding_at}"
            ex = f"exhausted ({p.bound})" if p.exhausted else "not exhausted" + (
                f" (bound {p.bound_reached} finished)" if p.bound_reached >= 0 else "")
            lines.append(f"  {p.strategy}: {p.executions:,} executions, {p.elapsed:.2f} s, {ff}, {ex}")
        for f in self.findings:
            mark = " (expected)" if f.expected else ""
            lines.append("")
            lines.append(f"[{f.kind}]{mark} {f.finding.title}  -- found by {f.strategy}, execution #{f.execution + 1}, "
                         f"seen {f.occurrences}x")
            lines.append(f.finding.report)
            shr = f", shrunk from {f.original_preemptions}" if f.shrunk else ""
            lines.append(f"preemptions: {f.preemptions}{shr}")
            lines.append(f"replay: {replay_command(f.token, self.scenario, max_steps=self.max_steps)}")
            if f.confirmation is not None:
                lines.append(f.confirmation.summary(self.scenario, max_steps=self.max_steps))
        for msg in self.nondeterminism:
            lines.append(f"NONDETERMINISM: {msg}")
        if self.info:
            lines.append(f"info findings (not bugs): {', '.join(sorted({f.kind for f in self.info}))}")
        lines.append(self.coverage.summary())
        if self.missing_expected:
            lines.append(f"expected but not found: {', '.join(self.missing_expected)}")
        lines.append(f"verdict: {self.verdict_line()}")
        if self.assurance is not None:
            lines.append(f"guarantee: {self.assurance.describe()}")
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "strategy": self.strategy,
            "verdict": self.verdict,
            "verdict_line": self.verdict_line(),
            "ok": self.ok,
            "exit_code": self.exit_code,
            "executions": self.executions,
            "elapsed": self.elapsed,
            "bound": self.bound,
            "exhausted_by": self.exhausted_by,
            "reason": self.reason,
            "jobs": self.jobs,
            "expected": list(self.expected),
            "missing_expected": self.missing_expected,
            "findings": [f.to_json() for f in self.findings],
            "info": [f.to_json() for f in self.info],
            "phases": [p.to_json() for p in self.phases],
            "coverage": self.coverage.to_json(),
            "nondeterminism": self.nondeterminism,
            "guarantee": self.assurance.guarantee.value if self.assurance is not None else None,
            "assurance": self.assurance.to_json() if self.assurance is not None else None,
            "races": None if self.races is None else {
                "races": self.races.races, "inserted": self.races.inserted,
                "rows": [r.to_json() for r in self.races.rows(self.race_top)],
            },
        }

    def to_json_text(self) -> str:
        return json.dumps(self.to_json(), indent=2)
