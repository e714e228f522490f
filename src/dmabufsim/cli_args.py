"""The command line's arguments: scenario specs, value checks, help text.

``cli.py`` dispatches the subcommands; this module decides what their
arguments mean before anything runs, so that bad input is one line on stderr
and exit code 2 (``cli.py``'s promise; exit code 1 means findings) and never
a traceback or a finding blamed on the user's scenario.

Rules:

* R1 (scenario specs): ``run``, ``explore`` and ``replay`` accept the same
  three forms: ``FILE.py:function``, ``package.module:function`` and a row
  of the claim catalog (``C11/noretry-fork``, or ``C18`` for a claim with one
  modelled design; ``--scenarios DIR`` adds catalog modules). A catalog row
  runs with its own kernel options (``prime_lockdep=False``...), as
  ``check`` runs it.
* R2 (loading): anything a scenario file or module raises while it is
  imported is bad input, named with the file's line; the model never runs.
* R3 (the scenario itself): the named attribute must exist, be callable,
  and accept exactly one positional argument, the ``Kernel``
  (``Kernel.run`` calls ``scenario(kernel)``); checked before the first
  execution, so a wrong signature is never reported as a ``TypeError``
  finding in the scenario.
* R4 (values): every numeric option is checked against its range before
  anything runs (:data:`MINIMUM`); ``--jobs`` is also capped at
  :data:`JOBS_PER_CPU` processes per usable CPU, since each job is a
  process exploring at full speed.
* R5 (checkpoints): ``--resume`` needs ``--checkpoint``, and a checkpoint
  (or, with ``--jobs N``, one job's file) to resume; ``--checkpoint`` must
  name a file the explorer can write (tried up front). The checkpoint's
  contents are the explorer's to judge.
* R6 (one-line errors): an argparse error is one line naming the command
  and pointing at its ``--help``, not the usage block.
* R7 (help): every option's help shows its default, computed from the
  parser (booleans and unset options show none).
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NoReturn

from .explore.command import JOBS_PER_CPU, SCENARIO_HELP, SCENARIOS_HELP, SPEC_FORMS
from .kernel.errors import UsageError
from .scenarios.catalog import ClaimScenario, discover, load_file_module

__all__ = ["SCENARIO_HELP", "SCENARIOS_HELP", "SPEC_FORMS", "CliError", "ScenarioSpec", "check_values",
           "finish_parser", "load_scenario", "resolve_scenario"]


class CliError(UsageError):
    """A user error on the command line: printed as one line, exit code 2."""


# ---------------------------------------------------------------- scenarios (R1-R3)


@dataclass(frozen=True)
class ScenarioSpec:
    """A resolved scenario argument: the function, the kernel options it runs with, its catalog row."""

    spec: str
    scenario: Callable[..., Any]
    #: ``Kernel`` keyword arguments of every execution (a catalog row's own, else none).
    kernel_options: Mapping[str, Any] = field(default_factory=dict)
    row: ClaimScenario | None = None


def resolve_scenario(spec: str, extra_dirs: Sequence[str] = ()) -> ScenarioSpec:
    """Resolve a scenario argument in any of the forms of R1, its signature checked (R3)."""
    if ":" in spec:
        fn = load_scenario(spec)
        return ScenarioSpec(spec, fn)
    if spec.endswith(".py") or os.path.exists(spec):
        raise CliError(f"name the scenario function too: {spec}:function (a scenario is {SPEC_FORMS})")
    cat = discover(tuple(extra_dirs))
    if not any(r.key.lower() == spec.lower() or r.claim.lower() == spec.lower() for r in cat):
        claim = spec.partition("/")[0].lower()
        designs = [r.key for r in cat if r.claim.lower() == claim and r.modelled]
        if designs:
            what = f"unknown design {spec!r}; designs of {designs[0].partition('/')[0]}: {', '.join(designs)}"
        else:
            what = f"unknown claim {spec!r}; known claims: {', '.join(cat.claims)}"
        raise CliError(f"{what} (see dmabufsim list); a scenario is {SPEC_FORMS}")
    row = cat.resolve(spec)
    assert row.scenario is not None  # resolve() returns modelled rows only
    check_signature(row.scenario, row.key)
    return ScenarioSpec(spec, row.scenario, dict(row.kernel_options), row)


def load_scenario(spec: str) -> Callable[..., Any]:
    """Load ``FILE.py:function`` or ``package.module:function`` (R2) and check the function (R3)."""
    if ":" not in spec:
        raise CliError(f"scenario must be {SPEC_FORMS}, got {spec!r}")
    path, _, func = spec.rpartition(":")
    if not func.isidentifier():
        raise CliError(f"{func!r} is not a function name (a scenario is {SPEC_FORMS})")
    if path.endswith(".py") or os.sep in path:
        if not os.path.isfile(path):
            raise CliError(f"no such file: {path}" + (" (that is a directory)" if os.path.isdir(path) else ""))
        module = load_file_module(path, prefix="_dmabufsim_scenario_")
    else:
        try:
            module = importlib.import_module(path)
        except ImportError as exc:
            raise CliError(f"cannot import {path}: {exc}") from None
        except SystemExit as exc:
            raise CliError(f"cannot import {path}: it called sys.exit({exc.code!r}) while imported") from None
        except Exception as exc:  # noqa: BLE001 - R2: whatever the module raises is bad input
            raise CliError(f"cannot import {path}: {type(exc).__name__}: {exc}") from None
    if not hasattr(module, func):
        names = sorted(
            n for n, v in vars(module).items()
            if inspect.isfunction(v) and not n.startswith("_") and v.__module__ == module.__name__
        )
        known = f"; it defines {', '.join(names)}" if names else ""
        raise CliError(f"{path} has no function {func!r}{known}")
    fn = getattr(module, func)
    check_signature(fn, spec)
    return fn  # type: ignore[no-any-return]


def check_signature(fn: Any, spec: str) -> None:
    """R3: ``fn`` is callable with one positional argument (the Kernel), else CliError saying what it is."""
    if not callable(fn):
        raise CliError(f"{spec} is {_a(type(fn).__name__)}, not a function: a scenario is a function "
                       "that takes the Kernel")
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):  # a builtin without a signature: let the call decide
        return
    try:
        sig.bind(object())
    except TypeError:
        params = [p for p in sig.parameters.values() if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
        what = f"takes ({', '.join(p.name for p in params)})" if params else "takes no argument"
        raise CliError(
            f"scenario {spec} {what}: a scenario takes exactly one argument, the Kernel (def {_name(fn)}(k): ...)"
        ) from None


def _a(noun: str) -> str:
    return ("an " if noun[:1].lower() in "aeiou" else "a ") + noun


def _name(fn: Any) -> str:
    return str(getattr(fn, "__name__", "scenario"))


# ---------------------------------------------------------------- values (R4, R5)

#: The smallest value of each numeric option (R4), by argparse ``dest``.
MINIMUM: dict[str, int] = {
    "jobs": 1,
    "budget": 1,
    "max_steps": 1,
    "depth": 1,
    "preemption_bound": 0,
}


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def max_jobs() -> int:
    """The most processes ``--jobs`` may ask for (R4)."""
    return JOBS_PER_CPU * usable_cpus()


def check_values(args: argparse.Namespace) -> None:
    """R4, R5: reject out-of-range values and impossible combinations before anything runs."""
    for dest, least in MINIMUM.items():
        value = getattr(args, dest, None)
        if value is not None and value < least:
            raise CliError(f"{_flag(dest)} must be at least {least}, got {value}")
    jobs = getattr(args, "jobs", None)
    if jobs is not None and jobs > max_jobs():
        cpus = usable_cpus()
        raise CliError(
            f"--jobs {jobs} is more than {max_jobs()} processes ({JOBS_PER_CPU} per CPU; "
            f"{cpus} CPU{'s' if cpus != 1 else ''} here): each job is a process running flat out"
        )
    time_budget = getattr(args, "time", None)
    if time_budget is not None and not time_budget > 0:
        raise CliError(f"--time must be more than 0 seconds, got {time_budget:g}")
    _check_checkpoint(args)


def _check_checkpoint(args: argparse.Namespace) -> None:
    path: str | None = getattr(args, "checkpoint", None)
    resume = bool(getattr(args, "resume", False))
    if resume and not path:
        raise CliError("--resume needs --checkpoint FILE (the file the earlier run saved)")
    if not path:
        return
    if os.path.isdir(path):
        raise CliError(f"--checkpoint {path} is a directory; name a file")
    folder = os.path.dirname(path) or "."
    if not os.path.isdir(folder):
        raise CliError(f"--checkpoint {path}: no such directory: {folder}")
    # A checkpoint of another --jobs is the explorer's to refuse, with its own message.
    if resume and not any(os.path.exists(p) for p in _checkpoint_files(path, folder)):
        raise CliError(f"--resume: no checkpoint {path} to resume (it is written by a run with --checkpoint)")
    # The explorer saves through PATH.tmp (then renames it): find out now whether it can.
    probe = f"{path}.tmp"
    existed = os.path.exists(probe)
    try:
        with open(probe, "ab"):
            pass
    except OSError as exc:
        raise CliError(f"--checkpoint {path}: cannot write there: {exc.strerror}") from None
    if not existed:
        os.unlink(probe)


def _checkpoint_files(path: str, folder: str) -> list[str]:
    """``path`` and the per-job files ``path.jobJ-of-N`` a run with ``--jobs N`` saves."""
    base = os.path.basename(path) + ".job"
    names = [path]
    for name in sorted(os.listdir(folder)):
        if name.startswith(base) and "-of-" in name and not name.endswith(".tmp"):
            names.append(os.path.join(folder, name))
    return names


def _flag(dest: str) -> str:
    return "--" + dest.replace("_", "-")


# ---------------------------------------------------------------- parser (R6, R7)


class Parser(argparse.ArgumentParser):
    """An argparse parser whose errors are one line (R6); subcommand parsers inherit it."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


class HelpFormatter(argparse.HelpFormatter):
    """Shows each option's default (R7) unless its help already says it or it has none to show."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        default = action.default
        if (
            "default" in text
            or default is None
            or isinstance(default, bool)
            or default == argparse.SUPPRESS
            or (isinstance(default, list) and not default)
            or not action.option_strings
        ):
            return text
        return f"{text} (default: %(default)s)"


def finish_parser(parser: argparse.ArgumentParser) -> None:
    """Give the parser and every subcommand parser the help formatter of R7."""
    parser.formatter_class = HelpFormatter
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                finish_parser(sub)

