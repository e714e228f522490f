"""Scenario-level stacks: where in the scenario (or driver) code a thing happened.

Reports show the frames of scenario and driver code, not the simulator's own
frames: a frame is *model-internal* when its file lies in one of the model
rooms (``kernel``, ``locking``, ``dma``, ``mm``, ``device``, ``check``,
``explore``, ``report``). Drivers and scenarios are written against the
public API and count as scenario code.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from types import CodeType, FrameType
from typing import Any

_PKG_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
#: Rooms whose frames are hidden from reports (the simulator's internals).
MODEL_ROOMS = ("kernel", "locking", "dma", "mm", "device", "check", "explore", "report")
_INTERNAL_PREFIXES = tuple(os.path.join(_PKG_DIR, room) + os.sep for room in MODEL_ROOMS)
_INTERNAL_FILES = (os.path.join(_PKG_DIR, "__init__.py"),)

#: greenlet's own frames and contextlib's are plumbing, not scenario code.
_PLUMBING = ("contextlib.py",)


@dataclass(frozen=True, slots=True)
class Frame:
    """One scenario-level frame: file, line, function."""

    filename: str
    lineno: int
    function: str

    def __str__(self) -> str:
        return f"{self.function}+{self.lineno} ({os.path.basename(self.filename)}:{self.lineno})"

    def to_json(self) -> dict[str, Any]:
        return {"file": self.filename, "line": self.lineno, "function": self.function}


def _internal(filename: str) -> bool:
    return filename.startswith(_INTERNAL_PREFIXES) or filename in _INTERNAL_FILES or filename.endswith(_PLUMBING)


#: Hot-path caches (a site is found on every lock acquisition): whether a
#: file is model-internal (keyed by file name: a string caches its hash, a
#: code object recomputes it on every lookup), and the immutable Frame of a
#: site, per code object (by ``id``; the entry holds the code object, so the
#: id cannot be reused while it is cached) and instruction offset. Both are
#: bounded by the amount of source code loaded. Lock fast paths read
#: ``_INTERNAL_FILE`` directly (see :func:`caller_site`).
_INTERNAL_FILE: dict[str, bool] = {}
_SITES: dict[int, tuple[CodeType, dict[int, Frame]]] = {}


def scenario_stack(limit: int = 8, frame: FrameType | None = None) -> tuple[Frame, ...]:
    """The scenario-level frames of the calling thread, innermost first."""
    f: FrameType | None = frame if frame is not None else sys._getframe(1)
    out: list[Frame] = []
    while f is not None and len(out) < limit:
        code = f.f_code
        if not _internal(code.co_filename):
            out.append(Frame(code.co_filename, f.f_lineno, code.co_name))
        f = f.f_back
    return tuple(out)


def is_internal_file(filename: str) -> bool:
    """Whether frames of ``filename`` are model-internal (cached in ``_INTERNAL_FILE``)."""
    inside = _INTERNAL_FILE.get(filename)
    if inside is None:
        inside = _INTERNAL_FILE[filename] = _internal(filename)
    return inside


def _lineno(code: CodeType, lasti: int) -> int:
    """The line of the instruction at byte offset ``lasti`` (what ``frame.f_lineno`` reads there).

    ``f_lineno`` of a frame that is not being traced is the line table's
    entry for the frame's current instruction, which ``co_lines`` lists.
    """
    for start, end, line in code.co_lines():
        if start <= lasti < end:
            return line  # type: ignore[return-value]  # None only for compiler-made instructions
    return code.co_firstlineno


def site_at(code: CodeType, lasti: int) -> Frame:
    """The Frame of instruction offset ``lasti`` in ``code`` (cached per code object and offset).

    Together with :func:`caller_site` this is the lazy form of
    :func:`call_site`: capture ``(code, f_lasti)`` when a lock is taken
    (a frame's ``f_lineno`` moves on as it runs, its instruction offset at
    the capture does not), build the Frame only when a report reads it.
    """
    entry = _SITES.get(id(code))
    if entry is None or entry[0] is not code:
        entry = _SITES[id(code)] = (code, {})
    sites = entry[1]
    site = sites.get(lasti)
    if site is None:
        site = sites[lasti] = Frame(code.co_filename, _lineno(code, lasti), code.co_name)
    return site


class LazySite:
    """A place captured cheaply: a Frame, or a code object with ``_lasti`` >= 0 that
    :func:`site_at` turns into the Frame the first time :attr:`site` is read."""

    __slots__ = ("_lasti", "_site")

    _site: Any
    _lasti: int

    @property
    def site(self) -> Frame | None:
        """The place (the innermost scenario-level frame), or None."""
        s = self._site
        if self._lasti >= 0:
            s = self._site = site_at(s, self._lasti)
            self._lasti = -1
        return s  # type: ignore[no-any-return]

    @site.setter
    def site(self, site: Frame | None) -> None:
        self._site = site
        self._lasti = -1


def caller_site(f: FrameType | None) -> tuple[CodeType | None, int]:
    """``(code, f_lasti)`` of the innermost scenario-level frame from ``f`` outwards, or ``(None, -1)``.

    The walk of :func:`call_site` without building the Frame (see
    :func:`site_at`). Lock fast paths inline its first step: when their
    caller's file is known to be scenario code (``_INTERNAL_FILE`` says
    False) they take the caller's code and ``f_lasti`` directly.
    """
    internal = _INTERNAL_FILE
    while f is not None:
        code = f.f_code
        fn = code.co_filename
        inside = internal.get(fn)
        if inside is None:
            inside = internal[fn] = _internal(fn)
        if not inside:
            return code, f.f_lasti
        f = f.f_back
    return None, -1


def call_site() -> Frame | None:
    """The innermost scenario-level frame of the caller, as a Frame (:func:`caller_site`
    then :func:`site_at`).

    Its line is the one the frame's current instruction belongs to
    (:func:`site_at`), so a cached site never depends on a tracer.
    """
    code, lasti = caller_site(sys._getframe(1))
    return site_at(code, lasti) if code is not None else None
