"""Lockdep's report texts, in the kernel's layout.

Models the printing half of ``kernel/locking/lockdep.c``:
``print_circular_bug`` (with ``print_circular_lock_scenario``),
``print_deadlock_bug``, ``print_usage_bug``, ``print_bad_irq_dependency``,
``print_irq_inversion_bug`` and ``lockdep_print_held_locks``. The layout is
the kernel's line for line, with two substitutions: a lock is printed
without its address and wait type (``(name){usage}, at: site``), and stacks
are scenario-level Python frames (``function+line (file.py:line)``). One
addition: each entry of the dependency chain starts with a line naming the
edge and who first took it (``[A -> B] (first seen by t1)``, ``(taught at
boot by dma_resv_lockdep())``, or ``(first seen by t1 in execution #3)``
for a graph kept across executions), and the title is followed by an
identification line as ``print_kernel_ident`` does.

Rules:

* R1: every report names the thread (``name/tid``), the lock being taken
  and the lock(s) involved with where they were taken, the dependency
  chain with the stack where each edge was first seen (edges taught by the
  boot-time priming show ``dma_resv_lockdep``), the kernel's "Possible
  unsafe locking scenario" table and the held locks.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from ..kernel.stack import Frame
from .lockdep_graph import USAGE_NAMES, Edge, LockClass

__all__ = ["USAGE_NAMES"]

#: The ``print_kernel_ident`` line under each title.
IDENT = "dmabufsim (model of Linux 6.12) Not tainted"


class _Held(Protocol):
    cls: LockClass
    read: int
    site: Frame | None


def lock_line(cls: LockClass, site: Frame | None) -> str:
    """``print_lock``: ``(name){usage}, at: site``."""
    return f"({cls.name}){{{cls.usage_str()}}}, at: {site if site is not None else '?'}"


def held_locks(who: str, held: Sequence[_Held]) -> list[str]:
    """``lockdep_print_held_locks``."""
    n = len(held)
    if n == 0:
        return [f"no locks held by {who}."]
    out = [f"{n} lock{'s' if n > 1 else ''} held by {who}:"]
    for i, h in enumerate(held):
        out.append(f" #{i}: {lock_line(h.cls, h.site)}")
    return out


def _stack_lines(stack: Sequence[Frame]) -> list[str]:
    return [f"       {f}" for f in stack] or ["       (no scenario frames)"]


def _banner(title: str, width: int | None = None) -> list[str]:
    """A report's opening: a blank line, the title between rules of ``width``
    (the title's own length unless the kernel prints another), and the
    ``print_kernel_ident`` line."""
    n = len(title) if width is None else width
    return ["", "=" * n, title, IDENT, "-" * n]


def _acquiring_while_holding(who: str, nxt: _Held, prev: _Held) -> list[str]:
    """The lock being taken and the one already held, as the circular and
    recursive reports both print them."""
    return [
        f"{who} is trying to acquire lock:",
        lock_line(nxt.cls, nxt.site),
        "",
        "but task is already holding lock:",
        lock_line(prev.cls, prev.site),
    ]


def _one_cpu_scenario(*steps: str) -> list[str]:
    """The "Possible unsafe locking scenario" table with one CPU column doing
    ``steps`` (the recursive and the inconsistent-state reports)."""
    return [
        "other info that might help us debug this:",
        " Possible unsafe locking scenario:",
        "",
        "       CPU0",
        "       ----",
        *steps,
        "",
        " *** DEADLOCK ***",
        "",
    ]


def _with_held_and_backtrace(lines: list[str], who: str, held: Sequence[_Held], current_stack: Sequence[Frame]) -> str:
    """A report's closing: the held locks and the stack backtrace after ``lines``, joined."""
    lines += held_locks(who, held)
    lines += ["", "stack backtrace:"]
    lines += _stack_lines(current_stack)
    return "\n".join(lines)


def _lk(read: int) -> str:
    return "rlock(" if read else "lock("


def circular(
    who: str,
    nxt: _Held,
    prev: _Held,
    path: Sequence[Edge],
    current_stack: Sequence[Frame],
    held: Sequence[_Held],
    execution: int = 1,
) -> str:
    """``print_circular_bug``: ``path`` runs from ``nxt``'s class to ``prev``'s class.

    ``execution`` is the number of the current execution in the graph's
    life: edges first seen in an earlier one say so.
    """
    lines = [
        *_banner("WARNING: possible circular locking dependency detected"),
        *_acquiring_while_holding(who, nxt, prev),
        "",
        "which lock already depends on the new lock.",
        "",
        "",
        "the existing dependency chain (in reverse order) is:",
    ]
    depth = len(path)
    for e in reversed(path):
        lines += ["", f"-> #{depth} ({e.dst.name}){{{e.dst.usage_str()}}}:"]
        if e.execution == 0:
            origin = " (taught at boot by dma_resv_lockdep())"
        elif e.execution != execution:
            origin = f" (first seen by {e.thread} in execution #{e.execution})"
        else:
            origin = f" (first seen by {e.thread})"
        lines.append(f"       [{e.src.name} -> {e.dst.name}]{origin}")
        lines += _stack_lines(e.stack)
        depth -= 1
    lines += ["", f"-> #0 ({nxt.cls.name}){{{nxt.cls.usage_str()}}}:"]
    lines.append(f"       [{prev.cls.name} -> {nxt.cls.name}] (this acquisition)")
    lines += _stack_lines(current_stack)
    lines += ["", "other info that might help us debug this:", ""]
    src, tgt = nxt.cls.name, prev.cls.name
    parent = path[-1].src.name if path else src
    if path and path[-1].src is not nxt.cls:
        lines += ["Chain exists of:", f"  {src} --> {parent} --> {tgt}", ""]
    lines += [
        " Possible unsafe locking scenario:",
        "",
        "       CPU0                    CPU1",
        "       ----                    ----",
        f"  {_lk(prev.read)}{tgt});",
        f"                               lock({parent});",
        f"                               lock({tgt});",
        f"  {_lk(nxt.read)}{src});",
        "",
        " *** DEADLOCK ***",
        "",
    ]
    return _with_held_and_backtrace(lines, who, held, current_stack)


def recursive(who: str, nxt: _Held, prev: _Held, current_stack: Sequence[Frame], held: Sequence[_Held]) -> str:
    """``print_deadlock_bug``."""
    lines = [
        *_banner("WARNING: possible recursive locking detected"),
        *_acquiring_while_holding(who, nxt, prev),
        "",
        *_one_cpu_scenario(f"  {_lk(prev.read)}{prev.cls.name});", f"  {_lk(nxt.read)}{nxt.cls.name});"),
        " May be due to missing lock nesting notation",
        "",
    ]
    return _with_held_and_backtrace(lines, who, held, current_stack)


def _usage_site(cls: LockClass, bit: int) -> list[str]:
    st = cls.usage_sites.get(bit)
    if st is None:
        return ["  (unknown)"]
    stack, thread = st
    return [f"  [{thread}]"] + [f"  {f}" for f in stack]


def irq_state(in_irq: bool, in_softirq: bool, irqs_on: bool, softirqs_on: bool) -> str:
    """``[HC1[1]:SC0[0]:HE0:SE1]``: in hardirq, in softirq, hardirqs enabled, softirqs enabled."""
    hc, sc = int(in_irq), int(in_softirq)
    return f"[HC{hc}[{hc}]:SC{sc}[{sc}]:HE{int(irqs_on)}:SE{int(softirqs_on)}]"


def usage_bug(
    who: str, state: str, h: _Held, prev_bit: int, new_bit: int, current_stack: Sequence[Frame], held: Sequence[_Held]
) -> str:
    """``print_usage_bug``: one class both irq-safe and irq-unsafe."""
    c = h.cls
    lines = [
        *_banner("WARNING: inconsistent lock state"),
        f"inconsistent {{{USAGE_NAMES[prev_bit]}}} -> {{{USAGE_NAMES[new_bit]}}} usage.",
        f"{who} {state} takes:",
        lock_line(c, h.site),
        f"{{{USAGE_NAMES[prev_bit]}}} state was registered at:",
    ]
    lines += _usage_site(c, prev_bit)
    lines += ["", *_one_cpu_scenario(f"  lock({c.name});", "  <Interrupt>", f"    lock({c.name});")]
    return _with_held_and_backtrace(lines, who, held, current_stack)


def _irq_scenario(safe: str, unsafe: str, middle: str | None) -> list[str]:
    """``print_irq_lock_scenario``."""
    lines: list[str] = []
    if middle is not None and middle != safe:
        lines += ["Chain exists of:", f"  {safe} --> {middle} --> {unsafe}", ""]
    lines += [
        " Possible interrupt unsafe locking scenario:",
        "",
        "       CPU0                    CPU1",
        "       ----                    ----",
        f"  lock({unsafe});",
        "                               local_irq_disable();",
        f"                               lock({safe});",
        f"                               lock({middle or unsafe});",
        "  <Interrupt>",
        f"    lock({safe});",
        "",
        " *** DEADLOCK ***",
        "",
    ]
    return lines


def bad_irq_dependency(
    who: str,
    state: str,
    nxt: _Held,
    prev: _Held,
    safe: LockClass,
    safe_bit: int,
    unsafe: LockClass,
    unsafe_bit: int,
    current_stack: Sequence[Frame],
    held: Sequence[_Held],
    irq: str = "HARDIRQ",
) -> str:
    """``print_bad_irq_dependency``: a new edge joins an irq-safe lock to an irq-unsafe one
    (``irq`` names the state: HARDIRQ or SOFTIRQ)."""
    lines = [
        *_banner(f"WARNING: {irq}-safe -> {irq}-unsafe lock order detected", width=53),
        f"{who} {state} is trying to acquire:",
        lock_line(nxt.cls, nxt.site),
        "",
        "and this task is already holding:",
        lock_line(prev.cls, prev.site),
        "which would create a new lock dependency:",
        f" ({prev.cls.name}){{{prev.cls.usage_str()}}} -> ({nxt.cls.name}){{{nxt.cls.usage_str()}}}",
        "",
        f"but this new dependency connects a {irq}-irq-safe lock:",
        f" ({safe.name}){{{safe.usage_str()}}}",
        "",
        f"... which became {irq}-irq-safe at:",
    ]
    lines += _usage_site(safe, safe_bit)
    lines += ["", f"to a {irq}-irq-unsafe lock:", f" ({unsafe.name}){{{unsafe.usage_str()}}}", ""]
    lines += [f"... which became {irq}-irq-unsafe at:"]
    lines += _usage_site(unsafe, unsafe_bit)
    lines += ["", "other info that might help us debug this:", ""]
    lines += _irq_scenario(safe.name, unsafe.name, prev.cls.name if prev.cls is not safe else None)
    return _with_held_and_backtrace(lines, who, held, current_stack)


def irq_inversion(
    who: str,
    h: _Held,
    path: Sequence[LockClass],
    forwards: bool,
    other_bit: int,
    current_stack: Sequence[Frame],
    held: Sequence[_Held],
    irq: str = "HARDIRQ",
) -> str:
    """``print_irq_inversion_bug``: a class changed state against one it is ordered with."""
    other = path[-1]
    lines = [
        *_banner("WARNING: possible irq lock inversion dependency detected"),
        f"{who} just changed the state of lock:",
        lock_line(h.cls, h.site),
    ]
    if forwards:
        lines.append(f"but this lock took another, {irq}-unsafe lock in the past:")
    else:
        lines.append(f"but this lock was taken by another, {irq}-safe lock in the past:")
    lines += [
        f" ({other.name}){{{other.usage_str()}}}",
        "",
        "",
        "and interrupts could create inverse lock ordering between them.",
        "",
    ]
    lines += ["", "other info that might help us debug this:"]
    names = [c.name for c in path]
    if forwards:
        safe, unsafe = names[0], names[-1]
        middle = names[-2] if len(names) > 2 else None
    else:
        safe, unsafe = names[-1], names[0]
        middle = names[1] if len(names) > 2 else None
    lines += _irq_scenario(safe, unsafe, middle)
    lines += [f"{'the first lock' if forwards else 'the second lock'}'s dependencies:"]
    lines += [f"... {USAGE_NAMES[other_bit]} registered at:"]
    lines += _usage_site(other, other_bit)
    return _with_held_and_backtrace(lines, who, held, current_stack)


def simple(title: str, who: str, body: Sequence[str], held: Sequence[_Held], current_stack: Sequence[Frame]) -> str:
    """A short lockdep warning (nest lock not held, held lock freed, ...)."""
    lines = [*_banner(title), *body, ""]
    return _with_held_and_backtrace(lines, who, held, current_stack)


def edges_json(path: Sequence[Edge]) -> list[dict[str, Any]]:
    return [e.to_json() for e in path]
