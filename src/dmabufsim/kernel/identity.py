"""Scenario identity: what a replay token and a checkpoint belong to.

A replay token is a choice sequence; replayed against another scenario it
runs *something* and proves nothing, and a checkpoint resumed for another
scenario continues a search of a different tree and can end in a false
"exhausted" verdict. So both carry the identity of the scenario they were
made with, and the replay / resume refuses a foreign one.

Rules:

* R1 (name): a scenario's name is its function's ``__qualname__``
  (``functools.partial`` layers unwrapped, their arguments part of the
  name when they are plain values). The module a file scenario was loaded
  under is not part of it: the same file loaded from another directory is
  the same scenario.
  A closure's cells that hold plain values are part of it too
  (``make_counter(2, 2)`` is not ``make_counter(3, 3)``).
* R2 (code): a scenario's code digest is the SHA-256 of the source of the
  module that defines it (for a file scenario, the file). Any edit of that
  file changes it. A function whose source is unavailable (``exec``) has
  the digest of its name alone, and says so (``source=False``).
* R3 (short id): tokens carry :attr:`ScenarioId.short`, 4 hex digits of the
  name's digest and 6 of the code's, so a replay tells "another scenario"
  (the name differs) from "another version of this scenario's code" (only
  the code differs).
* R4 (determinism): the identity depends only on names and source text --
  never on ``id()``, paths, the process or the Python version -- so the same
  execution has the same token in any process. It is computed once per
  function object (the explorer runs thousands of executions of one).
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import sys
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["ScenarioId", "scenario_id"]

_SIMPLE = (str, int, float, bool, type(None))


@dataclass(frozen=True)
class ScenarioId:
    """The identity of a scenario function (module rules R1-R4)."""

    #: ``__qualname__`` (with the plain arguments of a partial).
    name: str
    #: The module the function lives in (informational: not part of the short id, R1).
    module: str
    #: SHA-256 hex digest of the defining module's source (R2).
    code: str
    #: Whether the digest is of real source text.
    source: bool = True

    @functools.cached_property
    def name_digest(self) -> str:
        return hashlib.sha256(self.name.encode()).hexdigest()

    @functools.cached_property
    def short(self) -> str:
        """10 hex digits: 4 of the name's digest, then 6 of the code's (R3).

        Cached on the (frozen) identity, which Kernel.run reads once per execution.
        """
        return self.name_digest[:4] + self.code[:6]

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "module": self.module, "code": self.code, "source": self.source}


_cache: weakref.WeakKeyDictionary[Any, ScenarioId] = weakref.WeakKeyDictionary()


def _arg_text(v: Any) -> str:
    if isinstance(v, _SIMPLE):
        return repr(v)
    if isinstance(v, (tuple, list)) and all(isinstance(x, _SIMPLE) for x in v):
        return repr(tuple(v))
    return f"<{type(v).__qualname__}>"  # never repr(): it may hold an id()


_module_digests: weakref.WeakKeyDictionary[Any, str | None] = weakref.WeakKeyDictionary()


def _digest(src: str | None) -> str | None:
    return None if src is None else hashlib.sha256(src.encode()).hexdigest()


def _code_digest(fn: Any) -> str | None:
    """SHA-256 of the source of ``fn``'s module (once per module object: a re-loaded file is a new one)."""
    mod = sys.modules.get(getattr(fn, "__module__", "") or "")
    try:
        if mod is None:
            return _digest(inspect.getsource(fn))
        if mod not in _module_digests:
            try:
                _module_digests[mod] = _digest(inspect.getsource(mod))
            except (OSError, TypeError):
                _module_digests[mod] = None
        return _module_digests[mod]
    except (OSError, TypeError):
        return None


def _compute(fn: Any) -> ScenarioId:
    parts: list[str] = []
    f = fn
    while isinstance(f, functools.partial):
        args = [_arg_text(a) for a in f.args] + [f"{k}={_arg_text(v)}" for k, v in sorted(f.keywords.items())]
        parts.append(f"({', '.join(args)})")
        f = f.func
    f = inspect.unwrap(f) if callable(f) else f
    qual = getattr(f, "__qualname__", None) or type(f).__qualname__
    cells = []
    for c in getattr(f, "__closure__", None) or ():
        try:
            v = c.cell_contents
        except ValueError:  # an empty cell
            cells.append("<empty>")
            continue
        cells.append(_arg_text(v))
    name = qual + (f"[{', '.join(cells)}]" if cells else "") + "".join(reversed(parts))
    module = getattr(f, "__module__", "") or ""
    code = _code_digest(f)
    if code is None:
        return ScenarioId(name, module, hashlib.sha256(b"no source:" + name.encode()).hexdigest(), source=False)
    return ScenarioId(name, module, code)


def scenario_id(fn: Callable[..., Any]) -> ScenarioId:
    """The identity of the scenario function ``fn`` (cached per function object, R4)."""
    try:
        got = _cache.get(fn)
    except TypeError:  # not weak-referenceable (a builtin): compute each time
        return _compute(fn)
    if got is None:
        got = _cache[fn] = _compute(fn)
    return got


def remember(fn: Callable[..., Any], sid: ScenarioId) -> None:
    """Give ``fn`` the identity ``sid`` computed elsewhere (R4's cache, filled ahead).

    A scenario that travelled to another process (a Dask worker) may not find
    its module's source there; the identity computed where it came from keeps
    its tokens and checkpoints the same in every process.
    """
    try:
        _cache[fn] = sid
    except TypeError:  # not weak-referenceable: it is computed each time, from what this process has
        pass
