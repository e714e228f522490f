"""The ``dmabufsim`` command line (also ``python -m dmabufsim``).

``dmabufsim run SCENARIO --seed N`` runs one execution of a scenario and
prints its findings and replay token; ``dmabufsim replay TOKEN SCENARIO``
rebuilds it; ``explore``, ``check`` and ``list`` live in their rooms
(``explore/command.py``, ``report/commands.py``). A SCENARIO is
``FILE.py:function``, ``package.module:function`` or a catalog row
(``cli_args`` R1). Bad input (a missing file, a scenario that is not a
function of the Kernel, an out-of-range value, a malformed token) is one
clear line on stderr and exit code 2, checked before anything runs
(``cli_args``). Exit code 1 means the execution had findings of severity
error or warning; 141 that the reader of stdout went away (``| head``); 4 an internal error of
dmabufsim itself (a strategy that failed), printed as one line and never
reported as a finding of the scenario.
SIGINT (Ctrl-C) and SIGTERM are treated alike: a command stops promptly,
prints what it settled (marked partial / interrupted) and exits with
128 + the signal's number: 130 for SIGINT, 143 for SIGTERM.
``dmabufsim bench [NAME ...]`` runs the benchmarks of a source checkout's
``bench/`` directory (they are not installed with the package).
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import signal
import sys
import threading
from collections.abc import Sequence
from typing import Any

from . import __version__
from .cli_args import (
    SCENARIO_HELP,
    SCENARIOS_HELP,
    CliError,
    Parser,
    check_values,
    finish_parser,
    load_scenario,
    resolve_scenario,
)
from .explore import command as explore_command
from .explore.commandline import replay_command
from .kernel.errors import ReplayError, SimulatorError, UsageError
from .kernel.execution import Execution
from .kernel.runtime import Kernel
from .report import commands as catalog_commands
from .report import html as html_report
from .report.text import render_finding
from .scenarios.catalog import load_file_module

EXIT_OK = 0
EXIT_FINDINGS = 1
EXIT_USAGE = 2
#: ``run ... | head``: the reader closed the pipe (128 + SIGPIPE, as a process killed by it).
EXIT_BROKEN_PIPE = 141
#: An internal error of dmabufsim (explorer, strategy): never reported as a finding of the scenario.
EXIT_INTERNAL = 4

__all__ = ["CliError", "build_parser", "load_scenario", "main"]


def _print_execution(ex: Execution, as_json: bool, label: str, replay: str) -> int:
    if as_json:
        print(
            json.dumps(
                {
                    "outcome": ex.outcome,
                    "steps": ex.steps,
                    "now": ex.now,
                    "token": ex.token,
                    "trace_digest": ex.trace_digest,
                    "strategy": ex.strategy,
                    "diverged_at": ex.diverged_at,
                    "notes": list(ex.notes),
                    "findings": [f.to_json() for f in ex.findings],
                },
                indent=2,
            )
        )
    else:
        for f in ex.findings:  # the token is printed once, below (text R3)
            print(render_finding(f, label, replay="" if f.token == ex.token else None))
        print(f"outcome: {ex.outcome}  steps: {ex.steps}  virtual time: {ex.now} ns  findings: {len(ex.findings)}")
        print(f"trace digest: {ex.trace_digest}")
        print(f"replay: {replay}")
        for note in ex.notes:
            print(f"note: {note}")
        if ex.diverged_at is not None:
            # a token of another version of the scenario's code (a note says so) is no proof of nondeterminism
            why = "see the note above" if ex.notes else (
                "the scenario has uncontrolled nondeterminism (wall clock, unseeded randomness, id() ordering)")
            print(f"warning: the replay diverged from its token at choice {ex.diverged_at}: {why}")
    return EXIT_FINDINGS if ex.errors else EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    # A catalog row (C11/noretry-fork) runs with the row's kernel options.
    spec = resolve_scenario(args.scenario, tuple(args.scenarios))
    ex = Kernel(seed=args.seed, max_steps=args.max_steps, check_accesses=args.check_accesses,
               **{**spec.kernel_options, **watchdog_option(args)}).run(spec.scenario)
    return _print_execution(ex, args.json, args.scenario, replay_command(
        ex.token, args.scenario, scenarios_dirs=args.scenarios, max_steps=args.max_steps))


def cmd_replay(args: argparse.Namespace) -> int:
    # A catalog row (B1/abba-mutexes, C18) replays with the row's kernel options.
    spec = resolve_scenario(args.scenario, tuple(args.scenarios))
    record = bool(args.trace or args.dot or args.html)
    k = Kernel(replay=args.token, max_steps=args.max_steps, record_trace=record,
               **{**spec.kernel_options, **watchdog_option(args)})
    classes = catalog_commands.watch_lock_classes(k) if args.dot else None
    ex = k.run(spec.scenario)
    catalog_commands.write_artifacts(ex, trace=args.trace, dot=args.dot, label=args.scenario, kernel=k,
                                     classes=classes, all_classes=args.dot_all_classes)
    cmd = replay_command(ex.token, args.scenario, scenarios_dirs=args.scenarios, max_steps=args.max_steps)
    if args.html:
        html_report.write(ex, args.html, title=args.scenario, replay=cmd, pages=html_report.page_names(k))
    return _print_execution(ex, args.json, args.scenario, cmd)


def add_watchdog_option(p: argparse.ArgumentParser) -> None:
    """``--watchdog SECONDS``: the soft-lockup threshold (``Config.softlockup_thresh``)."""
    p.add_argument("--watchdog", type=float, default=None, metavar="SECONDS",
                   help="report a soft lockup when a thread runs this long (wall clock) without a scheduling "
                   "point (default 10; 0: off)")


def watchdog_option(args: argparse.Namespace) -> dict[str, Any]:
    """The Kernel option ``--watchdog`` asks for (none when not given: the default applies)."""
    if args.watchdog is None:
        return {}
    if args.watchdog < 0:
        raise CliError(f"--watchdog must be 0 (off) or a number of seconds, got {args.watchdog:g}")
    return {"softlockup_thresh": args.watchdog}


def bench_dir() -> pathlib.Path:
    """The ``bench/`` directory: ``$DMABUFSIM_BENCH_DIR``, else the source checkout's (src layout)."""
    env = os.environ.get("DMABUFSIM_BENCH_DIR")
    d = pathlib.Path(env) if env else pathlib.Path(__file__).resolve().parents[2] / "bench"
    if not (d / "run.py").is_file():
        raise CliError(
            f"no benchmarks at {d}: they live in the source checkout's bench/ directory and are not "
            "installed with the package; run from a clone (pip install -e .) or set DMABUFSIM_BENCH_DIR"
        )
    return d


def cmd_bench(args: argparse.Namespace) -> int:
    runner = load_file_module(str(bench_dir() / "run.py"), prefix="_dmabufsim_bench_")
    if args.list:
        for name in runner.available():
            print(name)
        return EXIT_OK
    return int(runner.main(list(args.names)))


def build_parser() -> argparse.ArgumentParser:
    p = Parser(
        prog="dmabufsim",
        description="An executable model of Linux's cross-device buffer-sharing stack.",
    )
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    r = sub.add_parser("run", help="run one execution of a scenario", description="Run one execution of a scenario.")
    r.add_argument("scenario", help=SCENARIO_HELP)
    r.add_argument("--seed", type=int, default=0, help="seed of the random schedule")
    r.add_argument("--max-steps", type=int, default=200_000,
                   help="scheduling points without progress before the execution is reported as a livelock")
    r.add_argument("--json", action="store_true", help="print JSON instead of text")
    r.add_argument("--scenarios", action="append", default=[], metavar="DIR", help=SCENARIOS_HELP)
    add_watchdog_option(r)
    r.add_argument("--check-accesses", action="store_true",
                   help="debug mode: report model accesses no scheduling point declares (slower)")
    r.set_defaults(func=cmd_run)

    rp = sub.add_parser(
        "replay", help="rebuild an execution from its token", description="Rebuild an execution from its token."
    )
    rp.add_argument("token", help="replay token printed by run / explore / check")
    rp.add_argument("scenario", help=SCENARIO_HELP)
    rp.add_argument("--max-steps", type=int, default=200_000,
                    help="scheduling points without progress before the execution is reported as a livelock")
    rp.add_argument("--json", action="store_true", help="print JSON instead of text")
    rp.add_argument("--trace", metavar="OUT.json", help="write a Chrome/Perfetto trace of the execution")
    rp.add_argument("--dot", metavar="OUT.dot", help="write the lock-dependency graph (Graphviz DOT) of the "
                    "lock classes the execution took")
    rp.add_argument("--dot-all-classes", action="store_true",
                    help="with --dot: also draw the classes lockdep was taught at boot (mmap_lock, dma_fence_map, "
                    "...) that the execution never took")
    rp.add_argument("--scenarios", action="append", default=[], metavar="DIR", help=SCENARIOS_HELP)
    html_report.add_html_argument(rp, directory=False)
    add_watchdog_option(rp)
    rp.set_defaults(func=cmd_replay)
    catalog_commands.add_parsers(sub)
    explore_command.add_parser(sub, resolve_scenario)
    html_report.add_html_argument(sub.choices["explore"], directory=True)
    sub.choices["explore"].set_defaults(after_report=html_report.explore_pages)

    b = sub.add_parser(
        "bench",
        help="run the benchmarks (ratios against a baseline measured in the same run)",
        description="Run bench/bench_NAME.py of the source checkout (all of them by default); each prints its "
        "numbers as ratios against a baseline measured in the same run.",
    )
    b.add_argument("names", nargs="*", metavar="NAME", help="scheduler, lockdep, fence, ... (default: all)")
    b.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    b.set_defaults(func=cmd_bench)
    finish_parser(p)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse already printed its one line (or the help, or the version)
        return int(exc.code or 0) if exc.code in (0, None) else EXIT_USAGE
    received = [int(signal.SIGINT)]

    def on_sigterm(signum: int, frame: Any) -> None:
        # SIGTERM is handled like Ctrl-C: each command's KeyboardInterrupt path prints what it settled.
        received[0] = signum
        raise KeyboardInterrupt

    main_thread = threading.current_thread() is threading.main_thread()
    old_term = signal.signal(signal.SIGTERM, on_sigterm) if main_thread else None
    try:
        check_values(args)
        rc = int(args.func(args))
        sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's exit
        return rc
    except (CliError, ReplayError, UsageError) as exc:
        print(f"dmabufsim: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:
        _silence_stdout()
        return EXIT_BROKEN_PIPE
    except SimulatorError as exc:
        print(f"dmabufsim: {exc}", file=sys.stderr)
        return EXIT_INTERNAL
    except KeyboardInterrupt:
        name = signal.Signals(received[0]).name
        print(f"dmabufsim: interrupted ({name})", file=sys.stderr)
        return 128 + received[0]
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, old_term)


def _silence_stdout() -> None:
    """After ``| head`` closed the pipe: point stdout at /dev/null so the exit's flush cannot fail again."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # not a real file (captured output)
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    os.close(devnull)


if __name__ == "__main__":
    sys.exit(main())
