"""The claim catalog: every claim of docs/claims.md as scenarios with expected verdicts.

The catalog is a registry of :class:`ClaimScenario` rows. A row is one
*design* of one *claim*: the scenario that runs it, the verdict the model
must reach, and how to explore it (strategy, budget in executions, kernel
options such as ``prime_lockdep=False``). A claim may have several designs
(C4: "lock, then free", "wait but ignore pinned", "lock, wait, refuse
pinned"), each its own row.

Scenario modules register themselves by convention: every module of this
package named ``c*.py``, ``h*.py`` (kernel history), ``s*.py`` (shared
virtual memory), ``basics_*.py`` or ``modern_*.py`` that
defines ``CLAIM`` (one dict) or ``CLAIMS`` (a list of dicts) is discovered,
in sorted module-name order, so the catalog is the same in every process.
A dict holds the :class:`ClaimScenario` fields by name (``id`` or
``claim``; ``scenario`` defaults to the module's ``scenario`` function;
``expected`` is a :class:`Verdict`, ``"clean"``, or a mapping with
``kinds`` / ``chain`` / ``absent``).

Claims of docs/claims.md (and the modern designs) that no module models yet are
still listed, as *pending* rows naming the rooms they need: a pending claim
is never shown as a pass and never given a verdict.

Rules:

* R1 (matching): an exploration *matches* its expected verdict when every
  expected kind was found in some execution, no error or warning kind was
  found that was not expected, no kind in ``absent`` was found, and, when a
  lock ``chain`` is expected, some ``circular-locking`` finding has that
  cycle (up to rotation); when ``asserts`` names the scenario's own failed
  checks, every ``assertion`` finding is one of them and each was seen (R7).
  Info findings (a stray access's ``iommu-fault``,
  ``user-incoherence``) are allowed unless asserted (in ``kinds``: must be
  found; in ``absent``: must not be). An error kind in ``absent`` says that
  no schedule may show it even though another expected kind predicts it
  (lockdep's cycle that cannot close, H11): such a row is explored to its
  whole budget, never stopped at the first expected finding. An
  ``iommu-fault`` of a job's own access is an error (the device lost the
  job's data, device R4) unless the row expects the kind.
* R2 (clean): ``Verdict(clean=True)`` expects no error or warning finding
  in any execution; it may still require info kinds, and the kinds that
  are info in some executions (``findings.SOMETIMES_INFO``): a clean row
  expecting ``iommu-fault`` ("the IOMMU faulted: isolation held") accepts
  its jobs' faults too -- the scenario makes them on purpose (a rogue job,
  a broken device) -- and is still searched to the end, never stopped at
  its first fault (``runner``).
* R3 (honesty): a clean verdict says how far the search went: "clean (200
  executions, portfolio; dpor exhausted (preemption bound 2))", or "...;
  not exhaustive" when no systematic phase covered its space.
* R4 (determinism): discovery order, row order and keys do not depend on
  the process or the file system's listing order.
* R5 (robustness): a package module that fails to load, or declares a row
  another module already declared, becomes one *broken* row naming the
  module and the error (``check`` reports it as an error and fails); the
  rest of the catalog still runs. A file given with ``--scenarios`` that
  fails to load is bad input instead (exit 2).
* R6 (shared experiments): a row may name another row's key in
  ``same_as`` (a design that another row's experiment already runs: a
  modern design, or one claim's design restated by another claim):
  it gets that row's scenario, verdict and budget, and ``check`` reports the
  one exploration under both rows (it runs once when both are selected).
* R7 (which assertion): an ``assertion`` finding is a scenario's own check
  (a lost write, a stale read, a torn list), so its kind alone says little.
  A verdict expecting ``assertion`` names the checks in ``asserts``: each
  entry matches a finding whose signature is the entry or starts with the
  entry and ``:`` (``"c18-torn"`` matches ``"c18-torn:reader0"``). Every
  named check must fail somewhere, and an ``assertion`` that matches no
  entry is unexpected.
* R9 (sources): a row may say where its design comes from: ``year`` and
  ``source`` (a commit, a Message-ID, a thread). The claim index gives a
  claim's default; a design's own entry wins (one claim of kernel history,
  H1, is three designs of three years). ``list`` and ``docs/catalog.md`` show
  them; the ``H`` claims get their own section, "from kernel history".
* R8 (proofs): a clean row is expected to be *proved* (every schedule of
  its configuration explored, ``check --strict``). A row that cannot be,
  within its budget, says why in ``unproved`` (the state count reached, the
  growth): the documented exception ``--strict`` accepts. The package's
  measured reasons live in ``proofs.py`` (``NOT_PROVED``, by row key) and
  are given to the rows at discovery; a row's own ``unproved`` wins.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import os
import pkgutil
import re
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from ..kernel.errors import UsageError
from ..kernel.findings import KINDS, SOMETIMES_INFO

Scenario = Callable[..., Any]

#: Module-name prefixes of this package that hold catalog rows.
MODULE_PREFIXES = ("c", "h", "s", "basics_", "modern_")

#: Default exploration budget (executions) of a row that names none.
DEFAULT_BUDGET = 200
#: Default strategy: the explorer's portfolio (random burst, PCT, bounded DPOR),
#: so a clean design can be reported "exhausted" within the DPOR bound.
DEFAULT_STRATEGY = "portfolio"
#: Strategies a row may name: the explorer's, and ``seeds`` (the runner's own
#: loop: execution i under random seed i, split over processes).
STRATEGIES = ("portfolio", "random", "pct", "dfs", "icb", "dpor", "odpor", "seeds")


def _is_info(kind: str) -> bool:
    return KINDS.get(kind) == "info"


def _may_be_info(kind: str) -> bool:
    return _is_info(kind) or kind in SOMETIMES_INFO


@dataclass(frozen=True)
class Verdict:
    """The verdict a design must reach (see the module Rules R1, R2).

    ``Verdict(clean=True)``: no error or warning in any explored execution.
    ``Verdict(kinds={"circular-locking"}, chain=("fs_reclaim", "resv"))``:
    those kinds found, nothing else wrong, and a circular-locking report
    whose cycle is that chain. ``absent`` asserts info kinds that must not
    appear. ``only_chain``: the expected chain is the *only* cycle lockdep
    reports (claims that say exactly which cycles remain, C6).
    ``asserts``: the signatures of the scenario's own checks expected to
    fail (R7); required whenever ``assertion`` is an expected kind.
    """

    clean: bool = False
    kinds: frozenset[str] = frozenset()
    chain: tuple[str, ...] = ()
    absent: frozenset[str] = frozenset()
    only_chain: bool = False
    asserts: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        object.__setattr__(self, "kinds", frozenset(self.kinds))
        object.__setattr__(self, "asserts", frozenset(self.asserts))
        object.__setattr__(self, "absent", frozenset(self.absent))
        object.__setattr__(self, "chain", tuple(self.chain))
        for k in sorted(self.kinds | self.absent):
            if k not in KINDS:
                raise UsageError(f"unknown finding kind {k!r} in a verdict; known: {sorted(KINDS)}")
        if self.clean and any(not _may_be_info(k) for k in self.kinds):
            bad = sorted(k for k in self.kinds if not _may_be_info(k))
            raise UsageError(f"a clean verdict can only require info kinds, not {bad}")
        if not self.clean and not self.kinds:
            raise UsageError("a verdict is either clean=True or names the finding kinds expected")
        if self.chain and "circular-locking" not in self.kinds:
            raise UsageError("a lock chain is only expected together with kind 'circular-locking'")
        if self.only_chain and not self.chain:
            raise UsageError("only_chain needs the chain it keeps")
        if ("assertion" in self.kinds) != bool(self.asserts):
            raise UsageError("an expected 'assertion' names the failing checks in asserts (catalog R7), and only then")

    @classmethod
    def of(cls, value: Verdict | str | Mapping[str, Any]) -> Verdict:
        """Build a verdict from a registry value: a Verdict, ``"clean"``, or a mapping."""
        if isinstance(value, Verdict):
            return value
        if value == "clean":
            return cls(clean=True)
        if isinstance(value, str):
            return cls(kinds=frozenset({value}))
        if isinstance(value, Mapping):
            unknown = sorted(set(value) - {"clean", "kinds", "chain", "absent", "only_chain", "asserts"})
            if unknown:
                raise UsageError(f"unknown verdict field(s) {unknown}")
            return cls(
                clean=bool(value.get("clean", False)),
                kinds=frozenset(value.get("kinds", ())),
                chain=tuple(value.get("chain", ())),
                absent=frozenset(value.get("absent", ())),
                only_chain=bool(value.get("only_chain", False)),
                asserts=frozenset(value.get("asserts", ())),
            )
        raise UsageError(f"cannot read a verdict from {value!r}")

    @property
    def error_kinds(self) -> frozenset[str]:
        """The expected kinds whose findings may be bugs (R1, R2)."""
        return frozenset(k for k in self.kinds if not _is_info(k))

    def describe(self) -> str:
        """One line: ``clean``, ``clean + iommu-fault``, ``circular-locking [a -> b -> a]``."""
        parts = []
        for k in sorted(self.kinds):
            if k == "circular-locking" and self.chain:
                cyc = " -> ".join((*self.chain, self.chain[0]))
                parts.append(f"{k} [{'only ' if self.only_chain else ''}{cyc}]")
            elif k == "assertion" and self.asserts:
                parts.append(f"{k} [{', '.join(sorted(self.asserts))}]")
            else:
                parts.append(k)
        text = ", ".join(parts)
        if self.clean:
            text = "clean" + (f" + {text}" if text else "")
        if self.absent:
            text += " (never " + ", ".join(sorted(self.absent)) + ")"
        return text

    def to_json(self) -> dict[str, Any]:
        return {
            "clean": self.clean,
            "kinds": sorted(self.kinds),
            "chain": list(self.chain),
            "absent": sorted(self.absent),
            "only_chain": self.only_chain,
            "asserts": sorted(self.asserts),
        }

    def match(self, found: Found) -> tuple[bool, str]:
        """Does an exploration's observation match? Returns (matches, why not)."""
        seen = found.kinds
        errors = {k for k in seen if k in found.error_kinds}
        missing = sorted(self.kinds - seen)
        unexpected = sorted(errors - self.kinds)
        forbidden = sorted(self.absent & seen)
        why = []
        if missing:
            why.append("not found: " + ", ".join(missing))
        if unexpected:
            why.append("unexpected: " + ", ".join(unexpected))
        if forbidden:
            why.append("must not appear: " + ", ".join(forbidden))
        if self.chain and "circular-locking" in seen and not any(same_cycle(self.chain, c) for c in found.chains):
            shown = "; ".join(" -> ".join(c) for c in found.chains) or "none recorded"
            why.append(f"no circular-locking report with chain {' -> '.join(self.chain)} (found: {shown})")
        if self.only_chain:
            others = [c for c in found.chains if not same_cycle(self.chain, c)]
            if others:
                why.append("other cycles reported: " + "; ".join(" -> ".join(c) for c in others))
        if self.asserts and "assertion" in seen:
            unmet = sorted(a for a in self.asserts if not any(assert_matches(a, s) for s in found.asserts))
            stray = sorted(s for s in found.asserts if not any(assert_matches(a, s) for a in self.asserts))
            if unmet:
                why.append("assertion not failed: " + ", ".join(unmet))
            if stray:
                why.append("unexpected assertion: " + ", ".join(stray))
        return (not why, "; ".join(why))


def assert_matches(entry: str, signature: str) -> bool:
    """Does an ``asserts`` entry name this assertion finding's signature (R7)?"""
    return signature == entry or signature.startswith(entry + ":")


def same_cycle(a: Sequence[str], b: Sequence[str]) -> bool:
    """True when ``a`` and ``b`` are the same cycle of lock classes, up to rotation.

    A chain that repeats its first class at the end (``a -> b -> a``) is
    read as the cycle ``a -> b``.
    """
    a = list(a)
    b = list(b)
    if len(a) > 1 and a[0] == a[-1]:
        a = a[:-1]
    if len(b) > 1 and b[0] == b[-1]:
        b = b[:-1]
    if len(a) != len(b):
        return False
    if not a:
        return True
    return any(b[i:] + b[:i] == a for i in range(len(b)))


@dataclass(frozen=True)
class Found:
    """What an exploration observed, summarised for matching and tables."""

    #: Every finding kind seen in any execution.
    kinds: frozenset[str]
    #: The kinds among them whose findings were errors or warnings.
    error_kinds: frozenset[str]
    #: The lock cycles of every circular-locking finding (class names).
    chains: tuple[tuple[str, ...], ...] = ()
    #: The signatures of every ``assertion`` finding (the scenario's own checks, R7).
    asserts: frozenset[str] = frozenset()


@dataclass(frozen=True)
class ClaimScenario:
    """One row of the catalog: a design of a claim, its scenario and expected verdict.

    A row with ``scenario=None`` is *pending*: the claim is listed but not
    modelled yet; ``needs`` names the rooms it waits for.
    """

    claim: str
    title: str
    design: str
    scenario: Scenario | None = None
    expected: Verdict | None = None
    who: str = ""
    strategy: str = DEFAULT_STRATEGY
    budget: int = DEFAULT_BUDGET
    slow: bool = False
    #: Kernel options of every execution (``Config`` fields: ``prime_lockdep``...).
    kernel_options: Mapping[str, Any] = field(default_factory=dict)
    #: Rooms a pending claim needs.
    needs: tuple[str, ...] = ()
    #: ``module:function`` of the scenario (for replay lines), or "".
    origin: str = ""
    #: The design's explanation (the scenario docstring by default).
    doc: str = ""
    #: Why the module declaring this row could not be loaded ("" when it was).
    broken: str = ""
    #: ``CLAIM/design`` of the row whose experiment this row is (R6), or "".
    same_as: str = ""
    #: Why this clean row cannot be proved within its budget (R8), or "".
    unproved: str = ""
    #: The year the design was written or shipped (R9), or None.
    year: int | None = None
    #: Where the design comes from: a commit, a Message-ID, a thread (R9), or "".
    source: str = ""

    def __post_init__(self) -> None:
        if self.scenario is not None and self.expected is None:
            raise UsageError(f"catalog row {self.key} has a scenario but no expected verdict")
        if self.budget < 1:
            raise UsageError(f"catalog row {self.key}: budget must be at least 1, got {self.budget}")
        if self.strategy not in STRATEGIES:
            raise UsageError(f"catalog row {self.key}: unknown strategy {self.strategy!r}; known: {list(STRATEGIES)}")
        if self.unproved and (self.expected is None or not self.expected.clean):
            raise UsageError(f"catalog row {self.key}: only a clean row can say why it is not proved (R8)")

    @property
    def key(self) -> str:
        """``CLAIM/design``: unique in the catalog."""
        return f"{self.claim}/{self.design}"

    @property
    def modelled(self) -> bool:
        return self.scenario is not None

    @property
    def status(self) -> str:
        if self.broken:
            return f"broken: {self.broken}"
        if self.modelled:
            return f"modelled (the experiment of {self.same_as})" if self.same_as else "modelled"
        return "not yet modelled (needs: " + ", ".join(self.needs or ("?",)) + ")"

    def to_json(self) -> dict[str, Any]:
        return {
            "claim": self.claim,
            "design": self.design,
            "key": self.key,
            "title": self.title,
            "who": self.who,
            "status": self.status,
            "modelled": self.modelled,
            "expected": self.expected.to_json() if self.expected else None,
            "expected_text": self.expected.describe() if self.expected else "",
            "strategy": self.strategy,
            "budget": self.budget,
            "slow": self.slow,
            "kernel_options": dict(self.kernel_options),
            "needs": list(self.needs),
            "origin": self.origin,
            "unproved": self.unproved,
            "year": self.year,
            "source": self.source,
        }

    @property
    def provenance(self) -> str:
        """``2019, d3c6dd1fb30d ...``: the row's year and source (R9), or ""."""
        return ", ".join(p for p in (str(self.year) if self.year else "", self.source) if p)


#: The claims of docs/claims.md and the modern designs: (id, who, short title, rooms needed).
#: Used to list claims no module models yet; a module's rows replace the pending one.
CLAIM_INDEX: tuple[tuple[str, str, str, tuple[str, ...]], ...] = (
    ("C1", "Christian", "full pipelining: moves queue behind every fence, move fence installed", ("dma-buf", "ttm")),
    ("C2", "Chris", "non-pipelined revoke waits on a completion for every importer", ("dma-buf", "device")),
    ("C3", "Christian", "lockless fence wait in notifier/shrinker; sg tables may outlive memory", ("userptr", "check")),
    ("C4", "Daniel", "holding resv stops only new fences; pinned unfenced users remain", ("dma-buf", "ttm")),
    ("C5", "Christian", "notifier never takes resv; shrinker may only trylock", ("lockdep", "ww_mutex", "mm")),
    ("C6", "Christian", "blocking resv in reclaim needs every allocation under resv GFP_NOIO", ("lockdep", "mm")),
    ("C7", "Daniel", "trylock-and-skip callbacks clean up everything once locked", ("userptr", "check")),
    ("C8", "Daniel", "CS evicts under its own ww acquire context", ("ww_mutex", "ttm")),
    ("C9", "Daniel", "sg tables outliving memory defeat IOMMU isolation", ("device", "check")),
    ("C10", "Christian", "unmapping under resv from the notifier is a lockdep horror", ("lockdep", "userptr")),
    ("C11", "Christian", "coherent userptr needs gup/CS/invalidate serialisation", ("userptr", "mm", "check")),
    ("C12", "Daniel", "userspace racing itself is info; kernel integrity violations are errors", ("userptr", "check")),
    ("C13", "Daniel", "amdgpu-2018 notifier leaves PTEs and IOMMU mappings", ("userptr", "device", "check")),
    ("C14", "Daniel", "dirty/accessed only after every mapping is gone", ("userptr", "check")),
    ("C15", "Daniel", "IOMMU mapping gone when the notifier says so", ("userptr", "device", "check")),
    ("C16", "Daniel", "one shared userptr helper for every driver", ("userptr", "drivers")),
    ("C17", "Daniel", "root-only userptr without notifier is flagged", ("userptr", "check")),
    ("C18", "Christian", "lockless resv readers restart and never see a torn list", ("dma",)),
    ("M1", "modern", "dma_resv usage levels (KERNEL/WRITE/READ/BOOKKEEP)", ("dma",)),
    ("M2", "modern", "dynamic importers with move_notify", ("dma-buf", "ttm")),
    ("M3", "modern", "userptr on mmu_interval_notifier with read_retry", ("userptr", "mm")),
    ("M4", "modern", "dma_fence_begin_signalling annotations", ("dma", "lockdep")),
    ("M5", "modern", "dma-buf mmap/vmap locking policy", ("dma-buf", "lockdep", "mm")),
    # From kernel history: real, fixed bugs of this stack.
    ("H1", "history", "drm_sched entity kill: where leftover jobs are signalled", ("sched", "workqueue", "irq_work")),
    ("H2", "history", "sw_sync timeline points: free vs signal", ("kref", "fence lifetimes")),
    ("H3", "history", "lockless dma_resv readers and recycled fences", ("kref", "fence lifetimes", "rcu")),
    ("H4", "history", "i915 userptr dirtying and the page lock", ("page lock", "userptr")),
    ("H5", "history", "i915 userptr notifier vs struct_mutex recursion", ("userptr", "fault path")),
    ("H6", "history", "OOM reaper vs blocking notifiers", ("mm", "oom reaper")),
    ("H7", "history", "mmu notifier range_end paired with range_start", ("mm", "notifiers")),
    ("H8", "history", "scheduler timeout handler vs job cleanup", ("sched", "kref")),
    ("H9", "history", "drm_syncobj replace vs get", ("kref", "fence lifetimes")),
    ("H10", "history", "timer-signalled fence calls del_timer_sync", ("timers",)),
    ("H11", "history", "panfrost shrinker and pages_lock", ("mm", "shrinker")),
    ("H12", "history", "amdgpu get_user_pages under reservation", ("userptr", "mm")),
    ("H13", "history", "amdkfd mmput in a notifier callback", ("mm lifetimes", "workqueue")),
    ("H14", "history", "i915 allocation under mm_lock", ("mm", "shrinker")),
    ("H15", "history", "TTM fault handler vs reservation", ("fault path", "ttm")),
    ("H16", "history", "nouveau pushbuf copy_from_user under reservation", ("fault path",)),
    ("H17", "history", "i915 fault under struct_mutex", ("fault path",)),
)

#: Year and source of each claim (R9): a design's own ``year`` / ``source`` wins.
CLAIM_SOURCES: dict[str, tuple[int, str]] = {
    **{f"C{n}": (2018, "dri-devel / linaro-mm-sig thread, March 2018") for n in range(1, 19)},
    "H1": (2021, "542cff7893a3 and its fixes"),
    "H2": (2019, "d3c6dd1fb30d and its 2023 fix"),
    "H3": (2016, "fedf54132d24, f5b07b04e5f0"),
    "H4": (2019, "0d4bbe3d40 (Fixes: 5cc9ed4b9a)"),
    "H5": (2019, "484d9a844d0d"),
    "H6": (2018, "93065ac753e4"),
    "H7": (2021, "20210311180057.1582638-1-seanjc@google.com"),
    "H8": (2019, "1574715089-14875-1-git-send-email-andrey.grodzovsky@amd.com"),
    "H9": (2017, "drm_syncobj locking, August 2017 review"),
    "H10": (2017, "81c0ed21aa91"),
    "H11": (2019, "drm/panfrost: Use mutex_trylock in panfrost_gem_purge"),
    "H12": (2016, "2f568dbd6b94"),
    "H13": (2021, "a29e067bd389 (Fixes: fa582c6f3684)"),
    "H14": (2020, "20200619194038.5088-1-chris@chris-wilson.co.uk"),
    "H15": (2013, "c58f009e01c9"),
    "H16": (2019, "03e0d26fcf79"),
    "H17": (2010, "51311d0a5c69"),
}


def _claim_sort_key(claim: str) -> tuple[int, int, str]:
    """C-claims first in number order, then modern (M), then basics (B), then others."""
    order = {"C": 0, "M": 1, "B": 2, "H": 3, "S": 4}
    head, num = claim[:1], claim[1:]
    return (order.get(head, 5), int(num) if num.isdigit() else 1 << 30, claim)


def _row_from_dict(d: Mapping[str, Any], module: ModuleType) -> ClaimScenario:
    known = {
        "id", "claim", "title", "who", "design", "scenario", "expected", "strategy", "budget", "slow",
        "kernel_options", "needs", "doc", "claim_text", "same_as", "unproved", "year", "source",
    }
    unknown = sorted(set(d) - known)
    if unknown:
        raise UsageError(f"{module.__name__}: unknown catalog field(s) {unknown}; known: {sorted(known)}")
    claim = d.get("id") or d.get("claim")
    if not isinstance(claim, str) or not claim:
        raise UsageError(f"{module.__name__}: a catalog entry needs an 'id' (the claim id)")
    index = {c[0]: c for c in CLAIM_INDEX}.get(claim)
    if d.get("same_as"):
        # Resolved by discover() once every module is loaded (R6).
        return ClaimScenario(
            claim=claim,
            title=str(d.get("title") or (index[2] if index else claim)),
            who=str(d.get("who") or (index[1] if index else "")),
            design=str(d.get("design") or d["same_as"]),
            doc=str(d.get("doc", "")).strip(),
            same_as=str(d["same_as"]),
            origin=module.__name__,
        )
    scenario = d.get("scenario", getattr(module, "scenario", None))
    if scenario is None or not callable(scenario):
        raise UsageError(f"{module.__name__}: catalog entry {claim} has no scenario function")
    design = d.get("design") or getattr(scenario, "__name__", "scenario")
    expected = d.get("expected")
    if expected is None:
        raise UsageError(f"{module.__name__}: catalog entry {claim}/{design} has no expected verdict")
    fn_name = getattr(scenario, "__name__", "")
    origin = f"{module.__name__}:{fn_name}" if getattr(module, fn_name, None) is scenario else module.__name__
    return ClaimScenario(
        claim=claim,
        title=str(d.get("title") or (index[2] if index else design)),
        who=str(d.get("who") or (index[1] if index else "")),
        design=str(design),
        scenario=scenario,
        expected=Verdict.of(expected),
        strategy=str(d.get("strategy", DEFAULT_STRATEGY)),
        budget=int(d.get("budget", DEFAULT_BUDGET)),
        slow=bool(d.get("slow", False)),
        kernel_options=dict(d.get("kernel_options", {})),
        origin=origin,
        doc=str(d.get("doc") or (scenario.__doc__ or "")).strip(),
        unproved=" ".join(str(d.get("unproved", "")).split()),
        **_provenance(d, claim, module),
    )


def _provenance(d: Mapping[str, Any], claim: str, module: ModuleType) -> dict[str, Any]:
    """``year`` and ``source`` of a row: its own entry, else its claim's (R9)."""
    year, source = CLAIM_SOURCES.get(claim, (None, ""))
    if "year" in d:
        if not isinstance(d["year"], int) or isinstance(d["year"], bool):
            raise UsageError(f"{module.__name__}: catalog entry {claim}: year must be an int, got {d['year']!r}")
        year = d["year"]
    return {"year": year, "source": " ".join(str(d.get("source", source)).split())}


def rows_of_module(module: ModuleType) -> list[ClaimScenario]:
    """The catalog rows a module declares through ``CLAIM`` or ``CLAIMS``."""
    entries: list[Any] = []
    if hasattr(module, "CLAIM"):
        entries.append(module.CLAIM)
    if hasattr(module, "CLAIMS"):
        entries.extend(module.CLAIMS)
    rows = []
    for e in entries:
        if isinstance(e, ClaimScenario):
            rows.append(e)
        elif isinstance(e, Mapping):
            rows.append(_row_from_dict(e, module))
        else:
            raise UsageError(f"{module.__name__}: catalog entries are dicts or ClaimScenario, got {type(e).__name__}")
    return rows


def _catalog_module_names() -> list[str]:
    pkg_dir = os.path.dirname(os.path.abspath(__file__))
    names = [
        m.name
        for m in pkgutil.iter_modules([pkg_dir])
        if not m.ispkg and m.name.startswith(MODULE_PREFIXES) and m.name != "catalog"
    ]
    return sorted(names)


def load_file_module(path: str, prefix: str = "_dmabufsim_catalog_") -> ModuleType:
    """Import a scenario file by path (``--scenarios DIR``, ``FILE.py:function`` on the CLI).

    Every failure is one clear ``UsageError`` line: unreadable file, syntax
    error, an import the file cannot make, or anything else the file raises
    (or a ``sys.exit()``) while it is imported, with the file's line.
    """
    name = prefix + os.path.splitext(os.path.basename(path))[0]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise UsageError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from None
    except SyntaxError as exc:
        raise UsageError(f"syntax error in {path} line {exc.lineno}: {exc.msg}") from None
    except ImportError as exc:
        hint = " (a module of the package: name it as package.module:function)" if exc.name is None else ""
        raise UsageError(f"cannot import {path}: {exc}{hint}") from None
    except SystemExit as exc:
        raise UsageError(f"cannot import {path}: it called sys.exit({exc.code!r}){_where(path, exc)}") from None
    except Exception as exc:  # noqa: BLE001 - whatever the file raises while imported is bad input
        raise UsageError(f"cannot import {path}: {type(exc).__name__}: {exc}{_where(path, exc)}") from None
    return module


def _where(path: str, exc: BaseException) -> str:
    """`` (line N)``: the last line of ``path`` on ``exc``'s traceback, or "" when it is not on it."""
    target = os.path.abspath(path)
    line = None
    tb = exc.__traceback__
    while tb is not None:
        if os.path.abspath(tb.tb_frame.f_code.co_filename) == target:
            line = tb.tb_lineno
        tb = tb.tb_next
    return "" if line is None else f" (line {line})"


class Catalog:
    """The ordered registry of rows, modelled and pending."""

    def __init__(self, rows: Iterable[ClaimScenario]) -> None:
        by_key: dict[str, ClaimScenario] = {}
        for r in rows:
            by_key[r.key] = r
        modelled_claims = {r.claim for r in by_key.values() if r.modelled}
        for cid, who, title, needs in CLAIM_INDEX:
            if cid not in modelled_claims:
                year, source = CLAIM_SOURCES.get(cid, (None, ""))
                pend = ClaimScenario(claim=cid, title=title, design="-", who=who, needs=needs, year=year, source=source)
                by_key.setdefault(pend.key, pend)
        self.rows: list[ClaimScenario] = sorted(by_key.values(), key=lambda r: (_claim_sort_key(r.claim), r.design))

    def __iter__(self) -> Any:
        return iter(self.rows)

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def claims(self) -> list[str]:
        out: list[str] = []
        for r in self.rows:
            if r.claim not in out:
                out.append(r.claim)
        return out

    def get(self, key: str) -> ClaimScenario:
        for r in self.rows:
            if r.key == key:
                return r
        raise UsageError(f"no catalog row {key!r}")

    def select(self, names: Sequence[str]) -> list[ClaimScenario]:
        """Rows of the named claims (``C11``) or rows (``C11/design``), in catalog order.

        Names are case-insensitive; an unknown name raises UsageError listing the claims.
        """
        if not names:
            return list(self.rows)
        wanted: set[str] = set()
        for n in names:
            nn = n.strip()
            hits = [r for r in self.rows if r.key.lower() == nn.lower() or r.claim.lower() == nn.lower()]
            if not hits:
                raise UsageError(f"unknown claim {n!r}; known claims: {', '.join(self.claims)}")
            wanted.update(r.key for r in hits)
        return [r for r in self.rows if r.key in wanted]

    def resolve(self, name: str) -> ClaimScenario:
        """The one modelled row named by ``CLAIM/design`` or by a claim id with one modelled design."""
        rows = [r for r in self.select([name]) if r.modelled]
        if not rows:
            raise UsageError(f"claim {name!r} is not modelled yet")
        if len(rows) > 1:
            raise UsageError(f"claim {name!r} has several designs; name one of: {', '.join(r.key for r in rows)}")
        return rows[0]


def _broken_row(module: str, why: str) -> ClaimScenario:
    m = re.match(r"c(\d+)", module)
    claim = f"C{int(m.group(1))}" if m else module
    return ClaimScenario(claim=claim, title=f"module {module}", design=f"<{module}>", broken=why)


def discover(extra_dirs: Sequence[str] = ()) -> Catalog:
    """Import every catalog module of this package (sorted by name) and of ``extra_dirs``.

    A row from an extra directory replaces the built-in row with the same
    ``CLAIM/design`` key (to try a variant of a design without editing the
    package).
    """
    rows: list[ClaimScenario] = []
    seen: dict[str, str] = {}
    for name in _catalog_module_names():
        try:
            module = importlib.import_module(f"{__package__}.{name}")
            found = rows_of_module(module)
        except Exception as exc:  # noqa: BLE001 - R5: one broken module is one error row
            rows.append(_broken_row(name, f"cannot load {name}: {type(exc).__name__}: {exc}"))
            continue
        dups = [f"{r.key} (also in {seen[r.key]})" for r in found if r.key in seen]
        if dups:
            rows.append(_broken_row(name, "rows declared twice: " + ", ".join(dups)))
        for r in found:
            if r.key not in seen:
                seen[r.key] = name
                rows.append(_with_proof_note(r))
    for d in extra_dirs:
        if not os.path.isdir(d):
            raise UsageError(f"no such scenario directory: {d}")
        for fname in sorted(os.listdir(d)):
            if fname.endswith(".py") and fname.startswith(MODULE_PREFIXES):
                rows.extend(rows_of_module(load_file_module(os.path.join(d, fname))))
    return Catalog(_resolve_same_as(rows))


def _with_proof_note(row: ClaimScenario) -> ClaimScenario:
    """A package row that cannot be proved gets the measured reason of ``proofs.NOT_PROVED`` (R8)."""
    from .proofs import NOT_PROVED

    why = NOT_PROVED.get(row.key, "")
    if not why or row.unproved or row.same_as or row.expected is None or not row.expected.clean:
        return row
    return dataclasses.replace(row, unproved=why)


def _resolve_same_as(rows: list[ClaimScenario]) -> list[ClaimScenario]:
    """Give each ``same_as`` row its target's experiment (R6)."""
    by_key = {r.key: r for r in rows if not r.same_as}
    out = []
    for r in rows:
        if not r.same_as or r.scenario is not None:
            out.append(r)
            continue
        t = by_key.get(r.same_as)
        if t is None or not t.modelled:
            why = f"same_as {r.same_as}: no such modelled row"
            out.append(dataclasses.replace(r, broken=why))
            continue
        out.append(dataclasses.replace(
            r, scenario=t.scenario, expected=t.expected, strategy=t.strategy, budget=t.budget, slow=t.slow,
            kernel_options=dict(t.kernel_options), origin=t.origin, doc=r.doc or t.doc, unproved=t.unproved,
        ))
    return out
