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
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from ..kernel.findings import Finding
from .commandline import replay_command
from .coverage import Coverage
from .guided import Confirmation

VERDICTS = ("finding", "exhausted", "inconclusive")

EXIT_OK = 0
EXIT_FINDING = 1
EXIT_INCONCLUSIVE = 3

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
        if self.verdict == "exhausted":
            who = f"{self.exhausted_by} phase of {self.strategy}" if self.exhausted_by else self.strategy
            return f"no finding, space exhausted: {who}, {self.bound}, {n}, exhausted ({t})"
        return f"inconclusive: no finding within budget ({self.reason}): {self.strategy}, {n}, {t}"

    def summary(self) -> str:
        """The plain-text report."""
        lines = [f"explore {self.scenario} with {self.strategy} (jobs={self.jobs})"]
        for p in self.phases:
            ff = "-" if p.first_finding_at is None else f"first finding at execution {p.first_finding_at}"
            ex = f"exhausted ({p.bound})" if p.exhausted else "not exhausted"
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
        }

    def to_json_text(self) -> str:
        return json.dumps(self.to_json(), indent=2)
