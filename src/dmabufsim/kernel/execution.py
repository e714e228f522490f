"""What one simulated machine is configured with and what one run of it returns.

:class:`Config` holds every knob of a :class:`~dmabufsim.kernel.runtime.Kernel`;
:class:`Execution` is the result of ``Kernel.run``: findings, the replay
token (made from the choices on first use), the trace digest, steps,
virtual time, and how each thread ended (:class:`ThreadSummary`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any, NamedTuple

from .choices import token_of
from .errors import UsageError
from .findings import Finding
from .progress import RUNAWAY_STEPS
from .stack import Frame
from .trace import Event, LockMark, SchedMark


@dataclass(frozen=True)
class Config:
    """Every knob of one simulated machine, with its reason.

    Pass as ``Kernel(config=Config(...))`` or as keyword overrides
    ``Kernel(max_steps=...)``.
    """

    #: Scheduling points without progress (a fence signalled, a completion
    #: completed, a thread exited, virtual time advanced: progress P1) before
    #: an execution is declared a livelock. A window that is exceeded usually
    #: means a retry loop that never backs off or a reader starved by a writer.
    max_steps: int = 200_000
    #: Scheduling points in one execution, progress or not, before it is
    #: declared a runaway (progress P3): the safety cap, much larger than
    #: ``max_steps``.
    runaway_steps: int = RUNAWAY_STEPS
    #: Virtual nanoseconds a thread may sleep uninterruptibly (a mutex, a
    #: completion, an uninterruptible fence wait, a timed wait it keeps
    #: re-entering) before it is a ``hung-task`` finding (``hung_task.py``);
    #: the kernel's ``hung_task_timeout_secs`` (120 s). 0 turns the detector off.
    hung_task_timeout: int = 120_000_000_000
    #: Keep every Event in ``Execution.events`` (for reports and traces).
    record_trace: bool = False
    #: Run the lock-dependency validator (when the lockdep room is loaded).
    lockdep: bool = True
    #: Teach lockdep the boot-time orders of ``dma_resv_lockdep()``.
    prime_lockdep: bool = True
    #: End the execution at the first finding of severity error.
    stop_on_first: bool = False
    #: Seconds of wall time a kthread may run without reaching a scheduling point
    #: before the watchdog reports a ``soft-lockup`` and stops it (runtime R9,
    #: ``watchdog.py``); 0 turns the watchdog off. Only an execution that hits it
    #: depends on it (the kernel's detector fires after 2 * watchdog_thresh = 20 s).
    softlockup_thresh: float = 10.0
    #: Debug mode: record the reads and writes model objects really perform and
    #: report any that the scheduling points do not declare (``kernel.accesses``;
    #: several times slower; off costs nothing).
    check_accesses: bool = False
    #: Lipton reduction (``kernel.reduction``): scheduling points no other thread can
    #: observe (thread-local steps, accesses of guarded objects under their lock,
    #: releases of blocking-only locks) make no scheduling choice. The explorer turns
    #: it on for its systematic strategies; a replay never uses it (reduction L4).
    reduction: bool = False
    #: Extension options by name (rooms above the kernel read their own).
    options: dict[str, Any] = field(default_factory=dict)


CONFIG_FIELDS = frozenset(Config.__dataclass_fields__)


def config_of(config: Config | None, overrides: dict[str, Any]) -> Config:
    """``Kernel(config=..., **overrides)``'s configuration: ``config`` (or the defaults) with
    ``overrides`` put in; an unknown name is a ``UsageError``. The explorer builds it once
    per phase and passes it to every execution's Kernel (a Config is immutable)."""
    if not overrides:
        return config or Config()
    if not CONFIG_FIELDS.issuperset(overrides):
        bad = sorted(set(overrides) - CONFIG_FIELDS)
        raise UsageError(f"unknown Kernel option(s) {bad}; known: {sorted(CONFIG_FIELDS)}")
    # Config(**overrides) is replace(Config(), **overrides) without the second Config.
    return replace(config, **overrides) if config is not None else Config(**overrides)


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
    #: ``hardirq`` / ``softirq`` for an interrupt handler (``Kernel.raise_irq`` / ``raise_softirq``), else "".
    context: str = ""


@dataclass(frozen=True)
class Execution:
    """The result of one run: findings, replay token, digest, steps, time.

    ``outcome`` is ``completed``, ``deadlock``, ``livelock``, ``runaway``,
    ``hung-task``, ``stopped``
    (ended at the first finding on request), ``soft-lockup`` (a thread
    reached no scheduling point in time) or ``time-limit`` (stopped at the
    caller's wall-clock deadline, runtime R9). ``diverged_at`` is set when a
    replay did not follow its token (uncontrolled nondeterminism).
    ``scenario_id`` is the short id of the scenario run (kernel.identity
    R3), which the token carries; ``notes`` what a replay has to say about
    its token (it ran out early, it was made for another version of the
    scenario's code).
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
    #: The lock_stat hooks of a recorded execution (``Kernel.lock_stat``), with ``events``.
    lock_marks: list[LockMark] | None = None
    #: Where threads were preempted or went to sleep (recorded executions only).
    sched_marks: list[SchedMark] | None = None
    #: Each event's call site (recorded executions only, trace T4): an index into ``stack_table``.
    event_stacks: list[int] | None = None
    #: The distinct scenario-level stacks of a recorded execution, innermost frame first.
    stack_table: list[tuple[Frame, ...]] | None = None
    scenario_id: str = ""
    notes: tuple[str, ...] = ()
    #: The token once made (``token`` makes it from ``choices`` on first use, choices R2).
    _token: str | None = field(default=None, repr=False, compare=False)

    @property
    def token(self) -> str:
        """The printable replay token of this execution (``Kernel(replay=token)``)."""
        tok = self._token
        if tok is None:
            tok = token_of(self.choices, self.scenario_id)
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


#: The names of Execution's fields, every one of which :func:`execution_of` takes.
EXECUTION_FIELDS = frozenset(f.name for f in fields(Execution))
_new = object.__new__


def execution_of(values: dict[str, Any]) -> Execution:
    """``Execution(**values)`` for ``values`` naming every field (:data:`EXECUTION_FIELDS`):
    the same frozen object, its fields put in with one dict update instead of the frozen
    ``__init__``'s ``object.__setattr__`` per field (the runtime makes one per execution)."""
    ex: Execution = _new(Execution)
    ex.__dict__.update(values)
    return ex
