"""What one simulated machine is configured with and what one run of it returns.

:class:`Config` holds every knob of a :class:`~dmabufsim.kernel.runtime.Kernel`;
:class:`Execution` is the result of ``Kernel.run``: findings, the replay
token (made from the choices on first use), the trace digest, steps,
virtual time, and how each thread ended (:class:`ThreadSummary`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from .choices import token_of
from .findings import Finding
from .trace import Event


@dataclass(frozen=True)
class Config:
    """Every knob of one simulated machine, with its reason.

    Pass as ``Kernel(config=Config(...))`` or as keyword overrides
    ``Kernel(max_steps=...)``.
    """

    #: Scheduling points before an execution is declared a livelock. A limit
    #: that is hit usually means a retry loop that never backs off or a
    #: thread polling a condition nobody will set.
    max_steps: int = 200_000
    #: Keep every Event in ``Execution.events`` (for reports and traces).
    record_trace: bool = False
    #: Run the lock-dependency validator (when the lockdep room is loaded).
    lockdep: bool = True
    #: Teach lockdep the boot-time orders of ``dma_resv_lockdep()``.
    prime_lockdep: bool = True
    #: End the execution at the first finding of severity error.
    stop_on_first: bool = False
    #: Debug mode: record the reads and writes model objects really perform and
    #: report any that the scheduling points do not declare (``kernel.accesses``;
    #: several times slower; off costs nothing).
    check_accesses: bool = False
    #: Extension options by name (rooms above the kernel read their own).
    options: dict[str, Any] = field(default_factory=dict)


_CONFIG_FIELDS = frozenset(Config.__dataclass_fields__)


class ThreadSummary(NamedTuple):
    """How a thread ended: its name, state and what it waits on if blocked.

    Immutable; a named tuple because every execution makes one per thread
    (a frozen dataclass cost ~3x more to build).
    """

    tid: int
    name: str
    state: str
    blocked_on: str = ""
    daemon: bool = False


@dataclass(frozen=True)
class Execution:
    """The result of one run: findings, replay token, digest, steps, time.

    ``outcome`` is ``completed``, ``deadlock``, ``livelock`` or ``stopped``
    (ended at the first finding on request). ``diverged_at`` is set when a
    replay did not follow its token (uncontrolled nondeterminism).
    """

    findings: list[Finding]
    trace_digest: str
    steps: int
    now: int
    outcome: str
    strategy: str
    threads: tuple[ThreadSummary, ...]
    #: Every choice made (what the token encodes): a tuple, or for a long
    #: execution a lazily decoded sequence (kernel.choices R3).
    choices: Sequence[int]
    preemptions: int
    diverged_at: int | None = None
    events: list[Event] | None = None
    #: The token once made (``token`` makes it from ``choices`` on first use, choices R2).
    _token: str | None = field(default=None, repr=False, compare=False)

    @property
    def token(self) -> str:
        """The printable replay token of this execution (``Kernel(replay=token)``)."""
        tok = self._token
        if tok is None:
            tok = token_of(self.choices)
            object.__setattr__(self, "_token", tok)  # a cache: the execution itself is frozen
        return tok

    @property
    def errors(self) -> list[Finding]:
        """Findings that are bugs (severity error or warning)."""
        return [f for f in self.findings if f.is_error]

    @property
    def kinds(self) -> list[str]:
        """The kinds of the findings, in order."""
        return [f.kind for f in self.findings]

    def by_kind(self, kind: str) -> list[Finding]:
        return [f for f in self.findings if f.kind == kind]
