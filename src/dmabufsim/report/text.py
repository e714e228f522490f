"""Kernel-style text reports of findings and executions.

Models the layout of the kernel's own debugging reports -- the lockdep
splat (``kernel/locking/lockdep.c``: a banner of ``=`` lines, the title,
a ``-`` line, the body), ``BUG: sleeping function called from invalid
context`` (``kernel/sched/core.c``), the hung-task report -- around the
body each checker already wrote into :attr:`Finding.report`.

Every finding is rendered the same way, whatever room raised it:

1. the banner and the kernel's title;
2. the checker's body (the chains, the page with its owner and
   generation, the mapping that reached it);
3. the rule the finding cites and where it happened (step, virtual time);
4. the scenario-level stacks of every thread involved (``Call Trace:``);
5. the replay line.

Rules:

* R1: the checker's body is printed verbatim; the renderer only adds the
  frame around it (a body that repeats the title does not print it twice;
  a body that already is a whole splat, banner included, gets no second
  banner).
* R2: a finding whose body is only its title gets its ``details`` printed
  as ``key: value`` lines, so no report is ever empty.
* R3: every report ends with a replay line when the token is known: a
  command that runs as printed (``explore.commandline`` R1-R3), unless the
  caller prints the execution's own replay line once below every finding
  (a long token, a livelock's, is printed once).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from ..explore.commandline import replay_command
from ..kernel.execution import Execution
from ..kernel.findings import Finding, ThreadInfo
from ..kernel.stack import Frame


def _banner(title: str) -> list[str]:
    width = max(len(title), 54)
    return ["", "=" * width, title, "-" * width]


def _fmt_value(v: Any) -> str:
    if isinstance(v, str):
        return v
    return json.dumps(v, sort_keys=True, default=str)


def render_details(details: dict[str, Any], indent: str = "") -> list[str]:
    """``key: value`` lines for a finding's details, in key order."""
    return [f"{indent}{k}: {_fmt_value(details[k])}" for k in sorted(details)]


def render_thread(t: ThreadInfo) -> list[str]:
    """One thread: ``name/tid`` and its scenario-level ``Call Trace:`` (innermost first)."""
    lines = [f"{t.name}/{t.tid}:", " Call Trace:"]
    if not t.stack:
        lines.append("  (no scenario-level frames)")
    for fr in t.stack:
        lines.append(f"  {fr}")
    return lines


def render_finding(f: Finding, scenario: str = "", *, replay: str | None = None) -> str:
    """The kernel-style report of one finding (see the module Rules).

    ``replay``: the replay command to end with (default: the one of
    ``f.token`` and ``scenario``); ``""`` prints none (R3).
    """
    body = (f.report or "").strip("\n")
    body_lines = body.splitlines()
    title = f.title
    if len(body_lines) > 1 and set(body_lines[0]) == {"="} and body_lines[1].strip().startswith(title.strip()):
        # The checker wrote the whole splat, banner included (lockdep): keep it as is.
        lines = [""]
    else:
        if body_lines and body_lines[0].strip().startswith(title.strip()):
            # The checker's first line is the title, maybe with the site: it heads the banner.
            title = body_lines[0].strip()
            body_lines = body_lines[1:]
        lines = _banner(title)
    if body_lines:
        lines.extend(body_lines)
    else:
        lines.extend(render_details(f.details))
    lines.append("")
    where = f"step {f.step}, t={f.now} ns"
    lines.append(f"{f.kind} ({f.severity}) at {where}" + (f"; rule: {f.rule}" if f.rule else ""))
    if f.threads:
        lines.append("")
        lines.append("threads involved:")
        for t in f.threads:
            lines.extend(render_thread(t))
    if replay is None and f.token:
        replay = replay_command(f.token, scenario)
    if replay:
        lines.append("")
        lines.append(f"replay: {replay}")
    return "\n".join(lines) + "\n"


def render_findings(findings: Iterable[Finding], scenario: str = "") -> str:
    return "".join(render_finding(f, scenario) for f in findings)


def render_execution(ex: Execution, scenario: str = "", *, replay: str | None = None) -> str:
    """Every finding of an execution, then a summary of how it ended and one replay line.

    A finding of this execution (its token is the execution's) gets no
    replay line of its own: the token, maybe tens of kilobytes for a
    livelock, is printed once, last (R3). ``replay``: that last command
    (default: the one of ``ex.token`` and ``scenario``).
    """
    if replay is None:
        replay = replay_command(ex.token, scenario)
    out = [
        render_finding(f, scenario, replay="" if f.token == ex.token else None) for f in ex.findings
    ]
    lines = [
        f"outcome: {ex.outcome}  steps: {ex.steps}  virtual time: {ex.now} ns  findings: {len(ex.findings)}",
        "threads: " + ", ".join(f"{t.name}/{t.tid} {t.state}" + (f" on {t.blocked_on}" if t.blocked_on else "")
                                for t in ex.threads),
        f"trace digest: {ex.trace_digest}",
        f"replay: {replay}",
    ]
    out.append("\n".join(lines) + "\n")
    return "".join(out)


def finding_from_json(d: dict[str, Any]) -> Finding:
    """Rebuild a :class:`Finding` from :meth:`Finding.to_json` (for reports of worker results)."""
    threads = tuple(
        ThreadInfo(t["tid"], t["name"], tuple(Frame(fr["file"], fr["line"], fr["function"]) for fr in t["stack"]))
        for t in d.get("threads", ())
    )
    return Finding(
        kind=d["kind"],
        title=d["title"],
        threads=threads,
        details=dict(d.get("details", {})),
        rule=d.get("rule", ""),
        severity=d.get("severity", ""),
        step=int(d.get("step", 0)),
        now=int(d.get("now", 0)),
        report=d.get("report", ""),
        token=d.get("token", ""),
        signature=d.get("signature", ""),
    )
