"""Findings: what a checker reports, in the kernel's words.

A finding is a *modelled kernel bug* (or a notable event) detected during an
execution. It never stops the simulator unless the caller asks; it is kept in
the :class:`~dmabufsim.Execution` with the replay token that rebuilds it.

The vocabulary of kinds is fixed (JSON output and catalog verdicts use it):
see :data:`KINDS`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from .stack import Frame

#: The fixed vocabulary of finding kinds, with the default severity of each.
#: ``info`` findings describe something that is allowed (isolation held,
#: userspace racing itself); ``warning`` and ``error`` are bugs.
KINDS: dict[str, str] = {
    "deadlock": "error",
    "circular-locking": "error",
    "recursive-locking": "error",
    "sleep-in-atomic": "error",
    "ww-usage": "error",
    "fence-double-signal": "error",
    "fence-never-signalled": "error",
    "dma-freed-page": "error",
    "dma-foreign-page": "error",
    # A job's own DMA faulted: the device lost the job's data (its fence carries -EIO). A
    # stray access of a broken device that faults is reported as info: isolation held.
    "iommu-fault": "error",
    "dirty-while-mapped": "error",
    "stale-mapping": "warning",
    "leak": "warning",
    "exception": "error",
    "livelock": "error",
    # A kthread that reached no scheduling point within the watchdog's threshold (wall clock).
    "soft-lockup": "error",
    "runaway": "error",
    "hung-task": "error",
    "assertion": "error",
    # A freed kernel object touched (KASAN's slab-use-after-free; kernel.lifetime L4).
    "use-after-free": "error",
    # A model step touched state its scheduling point did not declare (kernel.accesses A4).
    "undeclared-access": "error",
    # A guarded object accessed without its lock, or a blocking-only lock tested (kernel.reduction L2, L3).
    "unguarded-access": "error",
    # Userspace-visible incoherence (claim C12): allowed, reported as info.
    "user-incoherence": "info",
}

#: Kinds whose findings are info in some executions (a stray access's ``iommu-fault``): a
#: clean verdict may require them, and then only their info findings (catalog R1, R2).
SOMETIMES_INFO: frozenset[str] = frozenset({"iommu-fault"})

Severity = Literal["error", "warning", "info"]


@dataclass(frozen=True, slots=True)
class ThreadInfo:
    """A thread involved in a finding: its name, id and scenario-level stack."""

    tid: int
    name: str
    stack: tuple[Frame, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"tid": self.tid, "name": self.name, "stack": [f.to_json() for f in self.stack]}


@dataclass(frozen=True, slots=True)
class Finding:
    """One report of a checker.

    ``kind`` is from :data:`KINDS`; ``title`` is the kernel's report title
    ("WARNING: possible circular locking dependency detected"); ``threads``
    the threads involved with their stacks; ``details`` a JSON-able mapping
    specific to the kind (the lock chain, the page and its owner, ...);
    ``rule`` the model rule it cites ("dma_fence R3"); ``step`` the
    scheduling point at which it was raised; ``report`` the full text report
    in the kernel's layout; ``token`` the replay token of the execution.
    """

    kind: str
    title: str
    threads: tuple[ThreadInfo, ...] = ()
    details: dict[str, Any] = field(default_factory=dict)
    rule: str = ""
    severity: str = ""
    step: int = 0
    now: int = 0
    report: str = ""
    token: str = ""
    signature: str = ""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown finding kind {self.kind!r}; known: {sorted(KINDS)}")
        if not self.severity:
            object.__setattr__(self, "severity", KINDS[self.kind])
        if not self.signature:
            object.__setattr__(self, "signature", f"{self.kind}:{self.title}")

    def with_token(self, token: str) -> Finding:
        """``dataclasses.replace(self, token=token)``, without its per-field loop."""
        return Finding(
            kind=self.kind,
            title=self.title,
            threads=self.threads,
            details=self.details,
            rule=self.rule,
            severity=self.severity,
            step=self.step,
            now=self.now,
            report=self.report,
            token=token,
            signature=self.signature,
        )

    @property
    def is_error(self) -> bool:
        """True for findings that are bugs (error or warning), False for info."""
        return self.severity != "info"

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "title": self.title,
            "severity": self.severity,
            "rule": self.rule,
            "step": self.step,
            "now": self.now,
            "threads": [t.to_json() for t in self.threads],
            "details": self.details,
            "signature": self.signature,
            "token": self.token,
            "report": self.report,
        }

    def __str__(self) -> str:
        return self.report or f"{self.kind}: {self.title}"
