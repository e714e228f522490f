"""The ``dmabufsim`` command line.

``dmabufsim run FILE.py:function --seed N`` runs one execution of a scenario
and prints its findings and replay token; ``dmabufsim replay TOKEN
FILE.py:function`` rebuilds it. Bad input (a missing file, an unknown
function, a malformed token) is one clear line on stderr and exit code 2.
Exit code 1 means the execution had findings of severity error or warning.
``dmabufsim bench [NAME ...]`` runs the benchmarks of a source checkout's
``bench/`` directory (they are not installed with the package).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import pathlib
import sys
from collections.abc import Callable, Sequence
from typing import Any

from .explore import command as explore_command
from .kernel.errors import ReplayError, UsageError
from .kernel.execution import Execution
from .kernel.runtime import Kernel
from .report import commands as catalog_commands
from .report.text import render_finding
from .scenarios.catalog import load_file_module

EXIT_OK = 0
EXIT_FINDINGS = 1
EXIT_USAGE = 2


class CliError(Exception):
    """A user error: printed as one line, exit code 2."""


def load_scenario(spec: str) -> Callable[..., Any]:
    """Load ``FILE.py:function`` (or ``package.module:function``)."""
    if ":" not in spec:
        raise CliError(f"scenario must be FILE.py:function, got {spec!r}")
    path, _, func = spec.rpartition(":")
    if not func.isidentifier():
        raise CliError(f"{func!r} is not a function name")
    if path.endswith(".py") or os.sep in path:
        if not os.path.isfile(path):
            raise CliError(f"no such file: {path}")
        module = load_file_module(path, prefix="_dmabufsim_scenario_")
    else:
        try:
            module = importlib.import_module(path)
        except ImportError as exc:
            raise CliError(f"cannot import {path}: {exc}") from None
    fn = getattr(module, func, None)
    if fn is None or not callable(fn):
        raise CliError(f"{path} has no function {func!r}")
    return fn  # type: ignore[no-any-return]


def _print_execution(ex: Execution, as_json: bool, label: str = "<FILE.py:function>") -> int:
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
                    "findings": [f.to_json() for f in ex.findings],
                },
                indent=2,
            )
        )
    else:
        for f in ex.findings:
            print(render_finding(f, label))
        print(f"outcome: {ex.outcome}  steps: {ex.steps}  virtual time: {ex.now} ns  findings: {len(ex.findings)}")
        print(f"trace digest: {ex.trace_digest}")
        print(f"replay: dmabufsim replay {ex.token} {label}")
        if ex.diverged_at is not None:
            print(
                f"warning: the replay diverged from its token at choice {ex.diverged_at}: "
                "the scenario has uncontrolled nondeterminism (wall clock, unseeded randomness, id() ordering)"
            )
    return EXIT_FINDINGS if ex.errors else EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    scenario = load_scenario(args.scenario)
    ex = Kernel(seed=args.seed, max_steps=args.max_steps, check_accesses=args.check_accesses).run(scenario)
    return _print_execution(ex, args.json)


def cmd_replay(args: argparse.Namespace) -> int:
    # A catalog row (B1/abba-mutexes, C18) replays with the row's kernel options.
    row = catalog_commands.resolve_catalog_scenario(args.scenario, tuple(args.scenarios))
    scenario = row.scenario if row is not None and row.scenario is not None else load_scenario(args.scenario)
    options = dict(row.kernel_options) if row is not None else {}
    record = bool(args.trace or args.dot)
    k = Kernel(replay=args.token, max_steps=args.max_steps, record_trace=record, **options)
    ex = k.run(scenario)
    catalog_commands.write_artifacts(ex, trace=args.trace, dot=args.dot, label=args.scenario, kernel=k)
    return _print_execution(ex, args.json, args.scenario)


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
    p = argparse.ArgumentParser(
        prog="dmabufsim",
        description="An executable model of Linux's cross-device buffer-sharing stack.",
    )
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    r = sub.add_parser("run", help="run one execution of a scenario", description="Run one execution of a scenario.")
    r.add_argument("scenario", help="FILE.py:function (the function takes the Kernel)")
    r.add_argument("--seed", type=int, default=0, help="seed of the random schedule (default 0)")
    r.add_argument("--max-steps", type=int, default=200_000, help="scheduling points before livelock")
    r.add_argument("--json", action="store_true", help="print JSON instead of text")
    r.add_argument("--check-accesses", action="store_true",
                   help="debug mode: report model accesses no scheduling point declares (slower)")
    r.set_defaults(func=cmd_run)

    rp = sub.add_parser(
        "replay", help="rebuild an execution from its token", description="Rebuild an execution from its token."
    )
    rp.add_argument("token", help="replay token printed by run / explore / check")
    rp.add_argument("scenario", help="FILE.py:function, or a catalog row (B1/abba-mutexes, C18)")
    rp.add_argument("--max-steps", type=int, default=200_000, help="scheduling points before livelock")
    rp.add_argument("--json", action="store_true", help="print JSON instead of text")
    rp.add_argument("--trace", metavar="OUT.json", help="write a Chrome/Perfetto trace of the execution")
    rp.add_argument("--dot", metavar="OUT.dot", help="write the lock-dependency graph (Graphviz DOT)")
    rp.add_argument("--scenarios", action="append", default=[], metavar="DIR", help="extra catalog modules")
    rp.set_defaults(func=cmd_replay)
    catalog_commands.add_parsers(sub)
    explore_command.add_parser(sub, load_scenario)

    b = sub.add_parser(
        "bench",
        help="run the benchmarks (ratios against a baseline measured in the same run)",
        description="Run bench/bench_NAME.py of the source checkout (all of them by default); each prints its "
        "numbers as ratios against a baseline measured in the same run.",
    )
    b.add_argument("names", nargs="*", metavar="NAME", help="scheduler, lockdep, fence, ... (default: all)")
    b.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    b.set_defaults(func=cmd_bench)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse already printed its one line
        return int(exc.code or 0) if exc.code in (0, None) else EXIT_USAGE
    try:
        return int(args.func(args))
    except (CliError, ReplayError, UsageError) as exc:
        print(f"dmabufsim: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("dmabufsim: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
