"""The ``dmabufsim explore`` subcommand: progress bar, summary table, JSON, exit codes.

``dmabufsim explore FILE.py:function [--strategy random|pct|dfs|icb|dpor|odpor]
--budget 10000 --jobs 2`` explores a scenario and prints every distinct
finding with its (shrunk) replay token, a summary table per strategy, the
coverage and the verdict. Exit codes: 0 exhausted (or only expected
findings), 1 an unexpected finding (or an expected one missing after an
exhausted search, or nondeterminism), 3 inconclusive: the budget ran out
with nothing found -- never a pass.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from .explorer import STRATEGIES, Report, explore

#: Loads FILE.py:function (the CLI passes its own loader: this room does not import the CLI).
Loader = Callable[[str], Callable[..., Any]]


def add_parser(sub: Any, load_scenario: Loader) -> None:
    """Add ``explore`` to the CLI's subparsers."""
    e = sub.add_parser(
        "explore",
        help="search the schedules of a scenario for bugs",
        description="Search the schedules of a scenario; every finding comes with a replay token. "
        "Exit 0: exhausted or only expected findings; 1: unexpected finding; 3: inconclusive (budget ran out).",
    )
    e.add_argument("scenario", help="FILE.py:function (the function takes the Kernel)")
    e.add_argument("--strategy", choices=STRATEGIES, default="portfolio",
                   help="search strategy (default: portfolio = random burst, PCT, bounded DPOR)")
    e.add_argument("--budget", type=int, default=10_000, help="executions (default 10000)")
    e.add_argument("--time", type=float, default=None, metavar="SECONDS", help="wall-time budget")
    e.add_argument("--max-steps", type=int, default=200_000, help="scheduling points per execution")
    e.add_argument("--jobs", type=int, default=1, help="processes (default 1)")
    e.add_argument("--seed", type=int, default=0, help="seed of the randomised strategies")
    e.add_argument("--depth", type=int, default=3, help="PCT bug depth (default 3)")
    e.add_argument("--preemption-bound", type=int, default=None,
                   help="bound of dfs / icb / dpor (odpor is unbounded)")
    e.add_argument("--all", action="store_true", help="collect every finding instead of stopping at the first")
    e.add_argument("--expect", action="append", default=[], metavar="KIND",
                   help="a finding kind or signature the scenario expects (repeatable)")
    e.add_argument("--no-shrink", action="store_true", help="keep the schedules as found")
    e.add_argument("--checkpoint", metavar="FILE", help="save a systematic run here (resume with --resume)")
    e.add_argument("--resume", action="store_true", help="continue the run saved in --checkpoint")
    e.add_argument("--early-timers", action="store_true",
                   help="make timers and device interrupts part of the schedule (runtime R8)")
    e.add_argument("--check-accesses", action="store_true",
                   help="debug mode: report model accesses no scheduling point declares (slower)")
    e.add_argument("--no-lockdep-graph", action="store_true",
                   help="a fresh lockdep graph per execution instead of one per run")
    e.add_argument("--audit", action="store_true",
                   help="run DFS and DPOR (--strategy odpor: optimal DPOR) to exhaustion and compare their "
                   "terminal states (small models)")
    e.add_argument("--json", action="store_true", help="print JSON instead of text")
    e.add_argument("--no-progress", action="store_true", help="no progress bar")
    e.set_defaults(func=lambda args: cmd_explore(args, load_scenario))


def _table(report: Report) -> Any:
    from rich.table import Table

    t = Table(title=f"explore {report.scenario}")
    for col in ("strategy", "executions", "time (s)", "exec/s", "first finding", "exhausted"):
        t.add_column(col)
    for p in report.phases:
        rate = f"{p.executions / p.elapsed:,.0f}" if p.elapsed > 0 else "-"
        first = "-" if p.first_finding_at is None else f"#{p.first_finding_at} ({p.first_finding_time or 0:.3f} s)"
        t.add_row(p.strategy, f"{p.executions:,}", f"{p.elapsed:.2f}", rate, first,
                  f"yes ({p.bound})" if p.exhausted else "no")
    return t


def cmd_explore(args: argparse.Namespace, load_scenario: Loader) -> int:
    """Run ``dmabufsim explore``; returns the report's exit code."""
    scenario = load_scenario(args.scenario)
    kopts: dict[str, Any] = {"options": {"early_timers": True}} if args.early_timers else {}
    if args.check_accesses:
        kopts["check_accesses"] = True
    if args.audit:
        from .audit import audit

        res = audit(scenario, budget=args.budget, preemption_bound=args.preemption_bound, kernel_options=kopts,
                    por="odpor" if args.strategy == "odpor" else "dpor")
        print(res.summary())
        if not res.exhausted:
            return 3
        return 0 if res.ok else 1
    strategy = None if args.strategy == "portfolio" else args.strategy
    kw: dict[str, Any] = {
        "budget": args.budget, "time_budget": args.time, "max_steps": args.max_steps, "seed": args.seed,
        "depth": args.depth, "preemption_bound": args.preemption_bound, "jobs": args.jobs,
        "stop_on_first": not args.all, "expected": tuple(args.expect), "shrink_findings": not args.no_shrink,
        "checkpoint": args.checkpoint, "resume": args.resume, "kernel_options": kopts,
        "lockdep_graph": not args.no_lockdep_graph,
    }
    show = not args.no_progress and not args.json and sys.stderr.isatty()
    if show:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        with Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[rate]} exec/s"), TextColumn("findings: {task.fields[found]}"),
            TimeElapsedColumn(), transient=True,
        ) as bar:
            task = bar.add_task("explore", total=args.budget, rate="-", found=0)

            def progress(n: int, found: int, elapsed: float, name: str) -> None:
                rate = f"{n / elapsed:,.0f}" if elapsed > 0 else "-"
                bar.update(task, completed=n, description=name, rate=rate, found=found)

            report = explore(scenario, strategy, progress=progress, **kw)
    else:
        report = explore(scenario, strategy, **kw)
    report.scenario = args.scenario
    if args.json:
        print(report.to_json_text())
    else:
        print(report.summary())
        from rich.console import Console

        Console(file=sys.stdout, width=120).print(_table(report))
    return report.exit_code
