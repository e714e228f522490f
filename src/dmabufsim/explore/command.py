"""The ``dmabufsim explore`` subcommand: progress bar, summary table, JSON, exit codes.

``dmabufsim explore FILE.py:function [--strategy random|pct|dfs|icb|dpor|odpor]
--budget 10000 --jobs 2`` explores a scenario and prints every distinct
finding with its (shrunk) replay token, a summary table per strategy, the
coverage, the verdict and, when nothing was found, the guarantee reached
(proved / exhausted up to k preemptions / N samples). Exit codes: 0
exhausted (or only expected findings), 1 an unexpected finding (or an
expected one missing after an exhausted search, or nondeterminism), 3
inconclusive: the budget ran out with nothing found -- never a pass; 4 an
internal error (the CLI's, one line); interrupted (Ctrl-C, SIGTERM), it
prints the partial report at once and exits 130 (SIGINT) or 143 (SIGTERM).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from ..kernel.errors import UsageError
from ..kernel.findings import KINDS
from .explorer import STRATEGIES, Report, explore


class Resolved(Protocol):
    """A scenario argument resolved by the CLI: the function and the kernel options it runs with."""

    @property
    def scenario(self) -> Callable[..., Any]: ...

    @property
    def kernel_options(self) -> Mapping[str, Any]: ...


#: Resolves a scenario argument (FILE.py:function, module:function, a catalog row) with the ``--scenarios``
#: directories; the CLI passes its own resolver: this room does not import the CLI.
Loader = Callable[[str, tuple[str, ...]], Resolved]

#: The forms a scenario argument takes (the CLI's resolver accepts each).
SPEC_FORMS = "FILE.py:function, package.module:function, or a catalog row (C11/noretry-fork, C18)"

#: Help of the scenario argument of run / explore / replay.
SCENARIO_HELP = (
    f"the scenario: {SPEC_FORMS}; the function takes one argument, the Kernel. "
    "A catalog row runs with its own kernel options."
)

#: Help of ``--scenarios`` on run / explore / replay.
SCENARIOS_HELP = "also load catalog modules from DIR, to name their rows (repeatable)"

#: Processes per usable CPU that ``--jobs`` may ask for: each job explores flat out.
JOBS_PER_CPU = 4

#: Help of ``--expect``: the finding kinds by name.
EXPECT_HELP = (
    "a finding kind the scenario expects (repeatable): " + ", ".join(KINDS)
    + "; or a finding's signature (an assertion's name)"
)


def add_parser(sub: Any, load_scenario: Loader) -> None:
    """Add ``explore`` to the CLI's subparsers."""
    e = sub.add_parser(
        "explore",
        help="search the schedules of a scenario for bugs",
        description="Search the schedules of a scenario; every finding comes with a replay token. "
        "Exit 0: exhausted or only expected findings; 1: unexpected finding; 3: inconclusive (budget ran out); "
        "4: internal error of dmabufsim (never a finding of the scenario); "
        "130 / 143: interrupted by SIGINT / SIGTERM (the partial report is printed).",
    )
    e.add_argument("scenario", help=SCENARIO_HELP)
    e.add_argument("--strategy", choices=STRATEGIES, default="portfolio",
                   help="search strategy (default: portfolio = random burst, PCT, bounded DPOR)")
    e.add_argument("--budget", type=int, default=10_000, help="executions in all, shared by the --jobs (default 10000)")
    e.add_argument("--time", type=float, default=None, metavar="SECONDS",
                   help="wall-time budget in seconds, a hard limit: an execution still running then is stopped "
                   "(default: none)")
    e.add_argument("--max-steps", type=int, default=200_000,
                   help="scheduling points without progress before an execution is reported as a livelock")
    e.add_argument("--jobs", type=int, default=1,
                   help=f"worker processes of a local Dask cluster, at most {JOBS_PER_CPU} per CPU (default 1: "
                   "this process only; needs dmabufsim[cluster])")
    e.add_argument("--cluster", metavar="ADDR", default=None,
                   help="run the jobs on the running Dask scheduler at ADDR (tcp://HOST:8786; default: "
                   "$DMABUFSIM_CLUSTER); see docs/cluster.md")
    e.add_argument("--seed", type=int, default=0, help="seed of the randomised strategies")
    e.add_argument("--depth", type=int, default=3, help="PCT bug depth, at least 1 (default 3)")
    e.add_argument("--preemption-bound", type=int, default=None,
                   help="preemptions allowed per execution, at least 0: dfs and icb bound at it; dpor deepens "
                   "0, 1, ... up to it (default: dfs unbounded, icb up to 3, dpor 0, 1, 2, then unbounded; the "
                   "portfolio's dpor phase up to 2; odpor is always unbounded)")
    e.add_argument("--all", action="store_true", help="collect every finding instead of stopping at the first")
    e.add_argument("--expect", action="append", default=[], metavar="KIND",
                   help=EXPECT_HELP)
    e.add_argument("--no-shrink", action="store_true", help="keep the schedules as found")
    e.add_argument("--checkpoint", metavar="FILE", help="save a systematic run here (resume with --resume)")
    e.add_argument("--resume", action="store_true", help="continue the run saved in --checkpoint")
    e.add_argument("--early-timers", action="store_true",
                   help="let timers and device interrupts fire at any scheduling point, not only when "
                   "every thread waits (the explorer then searches their timing too)")
    e.add_argument("--no-reduction", action="store_true",
                   help="explore every scheduling point (no Lipton reduction of the systematic strategies: "
                   "thread-local steps, guarded accesses and releases of blocking-only locks are choices too)")
    e.add_argument("--check-accesses", action="store_true",
                   help="debug mode: report model accesses no scheduling point declares (slower)")
    e.add_argument("--no-lockdep-graph", action="store_true",
                   help="a fresh lockdep graph per execution instead of one per run")
    e.add_argument("--audit", action="store_true",
                   help="run DFS and DPOR (--strategy odpor: optimal DPOR) to exhaustion and compare their "
                   "terminal states (small models)")
    e.add_argument("--race-stats", type=int, nargs="?", const=10, default=None, metavar="N",
                   help="with --strategy odpor: count the races optimal DPOR reversed and the wakeup sequences "
                   "they inserted, by the pair of steps and the object they conflict on, and show the top N "
                   "(default 10); explains a search that will not exhaust")
    e.add_argument("--json", action="store_true", help="print JSON instead of text")
    e.add_argument("--no-progress", action="store_true", help="no progress bar")
    e.add_argument("--scenarios", action="append", default=[], metavar="DIR", help=SCENARIOS_HELP)
    e.add_argument("--watchdog", type=float, default=None, metavar="SECONDS",
                   help="report a soft lockup when a thread runs this long (wall clock) without a scheduling "
                   "point (default 10; 0: off)")
    e.set_defaults(func=lambda args: cmd_explore(args, load_scenario))


def _table(report: Report) -> Any:
    from rich.table import Table

    t = Table(title=f"explore {report.scenario}")
    for col in ("strategy", "executions", "time (s)", "exec/s", "first finding", "exhausted"):
        t.add_column(col)
    for p in report.phases:
        rate = f"{p.executions / p.elapsed:,.0f}" if p.elapsed > 0 else "-"
        first = "-" if p.first_finding_at is None else f"#{p.first_finding_at} ({p.first_finding_time or 0:.3f} s)"
        partial = f"no (bound {p.bound_reached} finished)" if p.bound_reached >= 0 else "no"
        t.add_row(p.strategy, f"{p.executions:,}", f"{p.elapsed:.2f}", rate, first,
                  f"yes ({p.bound})" if p.exhausted else partial)
    return t


def cmd_explore(args: argparse.Namespace, load_scenario: Loader) -> int:
    """Run ``dmabufsim explore``; returns the report's exit code."""
    resolved = load_scenario(args.scenario, tuple(args.scenarios))
    scenario = resolved.scenario
    # A catalog row's own kernel options (prime_lockdep=False...), plus the flags' extension options.
    kopts: dict[str, Any] = dict(resolved.kernel_options)
    if args.early_timers:
        kopts["options"] = {**dict(kopts.get("options") or {}), "early_timers": True}
    if args.watchdog is not None:
        if args.watchdog < 0:
            raise UsageError(f"--watchdog must be 0 (off) or a number of seconds, got {args.watchdog:g}")
        kopts["softlockup_thresh"] = args.watchdog
    if args.check_accesses:
        kopts["check_accesses"] = True
    if getattr(args, "no_reduction", False):
        kopts["reduction"] = False
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
        "depth": args.depth, "preemption_bound": args.preemption_bound, "jobs": args.jobs, "cluster": args.cluster,
        "stop_on_first": not args.all, "expected": tuple(args.expect), "shrink_findings": not args.no_shrink,
        "checkpoint": args.checkpoint, "resume": args.resume, "kernel_options": kopts,
        "lockdep_graph": not args.no_lockdep_graph, "race_stats": args.race_stats is not None,
    }
    if args.race_stats is not None and args.race_stats < 1:
        raise UsageError(f"--race-stats shows at least 1 row, got {args.race_stats}")
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
    report.max_steps = args.max_steps
    if args.race_stats is not None:
        report.race_top = args.race_stats
    # What the caller adds to a finished report (the CLI's HTML pages: --html); this room imports nothing above it.
    after = getattr(args, "after_report", None)
    if after is not None and report.reason != "interrupted":
        after(report, args, scenario, kopts)
    if args.json:
        print(report.to_json_text())
    else:
        print(report.summary())
        from rich.console import Console

        console = Console(file=sys.stdout, width=120)
        console.print(_table(report))
        if report.races is not None:
            from .race_stats import race_table

            r = report.races
            console.print(race_table(r.rows(report.race_top), r.races, r.inserted,
                                     title=f"races of the search (top {report.race_top})"))
    if report.reason == "interrupted":
        sys.stdout.flush()
        raise KeyboardInterrupt  # the partial report is out: the CLI exits 128 + the signal
    return report.exit_code
