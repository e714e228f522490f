"""Port of ``lib/locking-selftest.c`` (KERNEL.md 9.6): each family with the kernel's verdict.

``dotest(fn, expected)`` in the kernel runs a scenario and checks whether
lockdep complained: FAILURE = must be reported, SUCCESS = must not. Here
every scenario runs sequentially (one thread, ``FirstStrategy``) with the
boot-time priming off (the kernel's selftests run on a reset graph), and
each test asserts the exact finding: kind, title and ``details["chain"]``.

Lock kinds (columns of the kernel's table): ``spin`` = :class:`SpinLock`,
``wlock``/``rlock`` = :class:`RwLock` ``write_lock``/``read_lock``, ``mutex`` =
:class:`Mutex`, ``wsem``/``rsem`` = :class:`RwSem` ``down_write``/``down_read``
(non-recursive read). ``X1, X2`` are two locks of one class, ``A..D``
distinct classes. As ``locking_selftest()`` does, every family runs with
lockdep's ``force_read_lock_recursive`` set (``read_lock`` is a recursive
read even in process context), except the ``queued_read_lock_*`` cases,
which run with it clear: there the queued rwlock's reader is recursive only
in interrupt context.

The rwlock cases, with the kernel's verdicts, on the real ``rwlock_t``:
AA, the six ABBA-style deadlock families, double unlock and init held in the
wlock and rlock columns (2 x 9 = 18); the rlock rows of recursive
read-lock (#1, #2), mixed read-write, mixed write-read, the three mixed
ABBA and the chain-cached ABBA (8); the four rlock W/R permutation
families (4 x 6 = 24); irqsafe1 in both irq states and orders (2 x 2 x 2
= 8); irqsafe2B (hard, soft) and irqsafe2A in both orders (3 x 2 x 2 =
12); irqsafe3 and irqsafe4 in both irq states and six orders (2 x 2 x 6 x
2 = 48); irq_inversion with A read in the hardirq (2 x 6 = 12);
irq_read_recursion, #2 and #3 in both irq states (3 x 2 x 6 x 2 = 72);
the three ``queued_read_lock`` cases and the inversion case again with
``force_read_lock_recursive`` set (4); and ``might_sleep`` under each of
the eight ``read_lock`` / ``write_lock`` flavours (8): 214 rwlock verdicts
in all.

Not ported: ``init_held`` re-initialises a held lock; the model has no
re-init API, so the test calls ``Lockdep.debug_check_no_locks_freed`` (what
``spin_lock_init``/``mutex_init`` run under ``CONFIG_DEBUG_LOCK_ALLOC``).
The irq families ``irqsafe1``, ``irqsafe2B`` (the irq enabled again while
an irq-safe lock is held: ``trace_hardirqs_on`` / ``trace_softirqs_on`` mark
the held locks), ``irqsafe3``, ``irqsafe4``, ``irq_inversion`` and
``irq_read_recursion{,2,3}`` run in both irq states (:data:`IRQS`: the
kernel's ``-hardirq.h`` and ``-softirq.h`` headers), with ``irqsafe2A``;
``hardirq_deadlock_softirq_not_deadlock`` and the softirq context itself
are in ``test_locking_selftest_softirq.py``. Not ported: the rtmutex column (no
rtmutex in the model), and the wait-context tests.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any, NamedTuple

import pytest

import dmabufsim as ds
from dmabufsim.kernel.gfp import GFP_KERNEL, GFP_NOFS, memalloc_nofs
from dmabufsim.locking.annotations import fs_reclaim_acquire, fs_reclaim_release, might_alloc

LOCKDEP_KINDS = ("circular-locking", "recursive-locking", "assertion", "ww-usage", "leak")
CIRCULAR = "WARNING: possible circular locking dependency detected"
RECURSIVE = "WARNING: possible recursive locking detected"


def run_seq(body: Callable[[ds.Kernel], Any], *, force_read_lock_recursive: bool = True) -> ds.Execution:
    """Run ``body`` as one sequential thread on a fresh, unprimed graph, with lockdep's
    ``force_read_lock_recursive`` as ``locking_selftest()`` sets it."""

    def scenario(k: ds.Kernel) -> Any:
        k.lockdep.force_read_lock_recursive = force_read_lock_recursive
        return body(k)

    return ds.Kernel(strategy=ds.FirstStrategy(), prime_lockdep=False).run(scenario)


def lockdep_findings(ex: ds.Execution) -> list[ds.Finding]:
    return [f for f in ex.findings if f.kind in LOCKDEP_KINDS]


def assert_clean(ex: ds.Execution) -> None:
    assert ex.findings == [], [f.title for f in ex.findings]


def assert_one(ex: ds.Execution, kind: str, title: str, chain: list[str]) -> ds.Finding:
    fs = lockdep_findings(ex)
    assert [(f.kind, f.title, f.details.get("chain")) for f in fs] == [(kind, title, chain)]
    return fs[0]


# ---------------------------------------------------------------- lock kinds


class Lk:
    """One lock of a column, with the column's lock and unlock operations."""

    def __init__(self, kind: str, name: str) -> None:
        self.kind = kind
        if kind == "spin":
            self.obj: Any = ds.SpinLock(name)
        elif kind == "mutex":
            self.obj = ds.Mutex(name)
        elif kind in ("wsem", "rsem"):
            self.obj = ds.RwSem(name)
        else:
            self.obj = ds.RwLock(name)

    def lock(self) -> None:
        o = self.obj
        if self.kind in ("spin", "mutex"):
            o.lock()
        elif self.kind == "wsem":
            o.down_write()
        elif self.kind == "rsem":
            o.down_read()
        elif self.kind == "wlock":
            o.write_lock()
        else:
            o.read_lock()

    def unlock(self) -> None:
        o = self.obj
        if self.kind in ("spin", "mutex"):
            o.unlock()
        elif self.kind == "wsem":
            o.up_write()
        elif self.kind == "rsem":
            o.up_read()
        elif self.kind == "wlock":
            o.write_unlock()
        else:
            o.read_unlock()


KINDS = ["spin", "wlock", "rlock", "mutex", "wsem", "rsem"]
#: The kernel's verdict row of the deadlock families: only rlock (recursive read) passes.
REPORTED = {"spin": True, "wlock": True, "rlock": False, "mutex": True, "wsem": True, "rsem": True}


def lu2(a: Lk, b: Lk) -> None:
    """``LOCK_UNLOCK_2(a, b)``."""
    a.lock()
    b.lock()
    b.unlock()
    a.unlock()


# ---------------------------------------------------------------- deadlock families

#: family -> (pairs of LU2 in order, expected chain, expected new edge)
FAMILIES: dict[str, tuple[list[tuple[str, str]], list[str], list[str]]] = {
    "ABBA": ([("A", "B"), ("B", "A")], ["A", "B"], ["B", "A"]),
    "ABBCCA": ([("A", "B"), ("B", "C"), ("C", "A")], ["A", "B", "C"], ["C", "A"]),
    "ABCABC": ([("A", "B"), ("C", "A"), ("B", "C")], ["C", "A", "B"], ["B", "C"]),
    "ABBCCDDA": ([("A", "B"), ("B", "C"), ("C", "D"), ("D", "A")], ["A", "B", "C", "D"], ["D", "A"]),
    "ABCDBDDA": ([("A", "B"), ("C", "D"), ("B", "D"), ("D", "A")], ["A", "B", "D"], ["D", "A"]),
    "ABCDBCDA": ([("A", "B"), ("C", "D"), ("B", "C"), ("D", "A")], ["A", "B", "C", "D"], ["D", "A"]),
}


@pytest.mark.parametrize("kind", KINDS)
def test_AA(kind: str) -> None:
    def body(k: ds.Kernel) -> None:
        x1, x2 = Lk(kind, "X"), Lk(kind, "X")
        x1.lock()
        x2.lock()
        x2.unlock()
        x1.unlock()

    ex = run_seq(body)
    if REPORTED[kind]:
        assert_one(ex, "recursive-locking", RECURSIVE, ["X", "X"])
    else:
        assert_clean(ex)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_deadlock_families(family: str, kind: str) -> None:
    pairs, chain, new_edge = FAMILIES[family]

    def body(k: ds.Kernel) -> None:
        locks = {n: Lk(kind, n) for n in "ABCD"}
        for a, b in pairs:
            lu2(locks[a], locks[b])

    ex = run_seq(body)
    if REPORTED[kind]:
        f = assert_one(ex, "circular-locking", CIRCULAR, chain)
        assert f.details["new_edge"] == new_edge
    else:
        assert_clean(ex)


@pytest.mark.parametrize("kind", KINDS)
def test_double_unlock(kind: str) -> None:
    def body(k: ds.Kernel) -> None:
        a = Lk(kind, "A")
        a.lock()
        a.unlock()
        a.unlock()

    fs = lockdep_findings(run_seq(body))
    assert [(f.kind, f.title, f.details["lock"]) for f in fs] == [
        ("assertion", "WARNING: bad unlock balance detected!", "A")
    ]


@pytest.mark.parametrize("kind", KINDS)
def test_init_held(kind: str) -> None:
    def body(k: ds.Kernel) -> None:
        a = Lk(kind, "A")
        a.lock()
        k.lockdep.debug_check_no_locks_freed(a.obj)  # spin_lock_init(&A) with A held
        a.unlock()

    fs = lockdep_findings(run_seq(body))
    assert [(f.kind, f.title, f.details["lock"]) for f in fs] == [("assertion", "WARNING: held lock freed!", "A")]


# ---------------------------------------------------------------- read/write mixing


def rw(kind: str, name: str) -> tuple[Callable[[], None], Callable[[], None], Callable[[], None], Callable[[], None]]:
    """(read_lock, read_unlock, write_lock, write_unlock) of one lock of the rlock or rsem column."""
    if kind == "rlock":
        m = ds.RwLock(name)
        return m.read_lock, m.read_unlock, m.write_lock, m.write_unlock
    s = ds.RwSem(name)
    return s.down_read, s.up_read, s.down_write, s.up_write


@pytest.mark.parametrize(("kind", "reported"), [("rlock", False), ("rsem", True)])
def test_AA1_read_read_same_lock(kind: str, reported: bool) -> None:
    def body(k: ds.Kernel) -> None:
        rl, ru, _, _ = rw(kind, "X")
        rl()
        rl()
        ru()
        ru()

    ex = run_seq(body)
    if reported:
        assert_one(ex, "recursive-locking", RECURSIVE, ["X", "X"])
    else:
        assert_clean(ex)


@pytest.mark.parametrize(("kind", "reported"), [("rlock", False), ("rsem", True)])
def test_AA1B_read_read_same_class(kind: str, reported: bool) -> None:
    def body(k: ds.Kernel) -> None:
        r1, u1, _, _ = rw(kind, "X")
        r2, u2, _, _ = rw(kind, "X")
        r1()
        r2()
        u2()
        u1()

    ex = run_seq(body)
    if reported:
        assert_one(ex, "recursive-locking", RECURSIVE, ["X", "X"])
    else:
        assert_clean(ex)


@pytest.mark.parametrize("kind", ["rlock", "rsem"])
def test_AA2_read_then_write(kind: str) -> None:
    def body(k: ds.Kernel) -> None:
        r1, u1, _, _ = rw(kind, "X")
        _, _, w2, wu2 = rw(kind, "X")
        r1()
        w2()
        wu2()
        u1()

    assert_one(run_seq(body), "recursive-locking", RECURSIVE, ["X", "X"])


@pytest.mark.parametrize("kind", ["rlock", "rsem"])
def test_AA3_write_then_read(kind: str) -> None:
    def body(k: ds.Kernel) -> None:
        _, _, w1, wu1 = rw(kind, "X")
        r2, u2, _, _ = rw(kind, "X")
        w1()
        r2()
        u2()
        wu1()

    assert_one(run_seq(body), "recursive-locking", RECURSIVE, ["X", "X"])


def _abba_rw(kind: str, first_read: bool, second_read: bool, third: str | None = None) -> ds.Execution:
    def body(k: ds.Kernel) -> None:
        rl, ru, wl, wu = rw(kind, "X")
        y: Any = ds.SpinLock("Y") if kind == "rlock" else ds.Mutex("Y")  # the kernel's L(Y1) per column
        (rl if first_read else wl)()
        y.lock()
        y.unlock()
        (ru if first_read else wu)()
        y.lock()
        (rl if second_read else wl)()
        (ru if second_read else wu)()
        y.unlock()
        if third is not None:
            y.lock()
            (rl if third == "read" else wl)()
            (ru if third == "read" else wu)()
            y.unlock()

    return run_seq(body)


@pytest.mark.parametrize("kind", ["rlock", "rsem"])
def test_ABBA1_read_then_write(kind: str) -> None:
    f = assert_one(_abba_rw(kind, True, False), "circular-locking", CIRCULAR, ["X", "Y"])
    assert f.details["new_edge"] == ["Y", "X"]


@pytest.mark.parametrize(("kind", "reported"), [("rlock", False), ("rsem", True)])
def test_ABBA2_read_then_read(kind: str, reported: bool) -> None:
    ex = _abba_rw(kind, True, True)
    if reported:
        assert_one(ex, "circular-locking", CIRCULAR, ["X", "Y"])
    else:
        assert_clean(ex)


@pytest.mark.parametrize("kind", ["rlock", "rsem"])
def test_ABBA3_write_then_write(kind: str) -> None:
    assert_one(_abba_rw(kind, False, False), "circular-locking", CIRCULAR, ["X", "Y"])


def test_rlock_chaincache_ABBA1() -> None:
    """[read X -> Y]; [Y -> read X] (fine); [Y -> write X]: the cached chain must not hide it."""
    f = assert_one(_abba_rw("rlock", True, True, third="write"), "circular-locking", CIRCULAR, ["X", "Y"])
    assert f.details["new_edge"] == ["Y", "X"]


#: name -> ([(holder mode, taken mode) of the sections X->Y, Y->Z, Z->X]), reported
PERMUTATION_FAMILIES = {
    "W1R2_W2R3_W3R1": ([("W", "R"), ("W", "R"), ("W", "R")], True),
    "W1W2_R2R3_W3R1": ([("W", "W"), ("R", "R"), ("W", "R")], True),
    "W1R2_R2R3_W3W1": ([("W", "W"), ("R", "R"), ("R", "W")], False),
    "W1W2_R2R3_R3W1": ([("W", "R"), ("R", "R"), ("W", "W")], False),
}


@pytest.mark.parametrize("perm", list(itertools.permutations(range(3))), ids=lambda p: "".join(map(str, p)))
@pytest.mark.parametrize("family", sorted(PERMUTATION_FAMILIES))
def test_rlock_permutation_families(family: str, perm: tuple[int, int, int]) -> None:
    modes, reported = PERMUTATION_FAMILIES[family]
    names = ["X", "Y", "Z"]

    def body(k: ds.Kernel) -> None:
        locks = {n: RwLock(n) for n in names}

        def take(n: str, mode: str) -> None:
            if mode == "R":
                locks[n].rl()
            else:
                locks[n].wl()

        for i in perm:
            a, b = names[i], names[(i + 1) % 3]
            take(a, modes[i][0])
            take(b, modes[i][1])
            locks[b].u()
            locks[a].u()

    ex = run_seq(body)
    if reported:
        last = perm[-1]
        target = (last + 1) % 3  # the last section closes the cycle: chain starts at what it takes
        chain = [names[(target + j) % 3] for j in range(3)]
        f = assert_one(ex, "circular-locking", CIRCULAR, chain)
        assert f.details["new_edge"] == [names[last], names[target]]
    else:
        assert_clean(ex)


# ---------------------------------------------------------------- fs_reclaim


def test_fs_reclaim_correct_nesting() -> None:
    def body(k: ds.Kernel) -> None:
        fs_reclaim_acquire(GFP_KERNEL)
        might_alloc(GFP_NOFS)
        fs_reclaim_release(GFP_KERNEL)

    assert_clean(run_seq(body))


def test_fs_reclaim_wrong_nesting() -> None:
    def body(k: ds.Kernel) -> None:
        fs_reclaim_acquire(GFP_KERNEL)
        might_alloc(GFP_KERNEL)
        fs_reclaim_release(GFP_KERNEL)

    assert_one(run_seq(body), "recursive-locking", RECURSIVE, ["fs_reclaim", "fs_reclaim"])


def test_fs_reclaim_protected_nesting() -> None:
    def body(k: ds.Kernel) -> None:
        fs_reclaim_acquire(GFP_KERNEL)
        with memalloc_nofs():
            might_alloc(GFP_KERNEL)
        fs_reclaim_release(GFP_KERNEL)

    assert_clean(run_seq(body))


# ---------------------------------------------------------------- irq safety

INCONSISTENT = "WARNING: inconsistent lock state"


def _in_irq(k: ds.Kernel, fn: Callable[[], None]) -> None:
    """``IRQ_ENTER(); fn(); IRQ_EXIT();`` -- an interrupt handler, waited for."""
    k.join(k.raise_irq(fn, name="irq"))


PERMS3 = ["123", "132", "213", "231", "312", "321"]
BAD_IRQ = "WARNING: HARDIRQ-safe -> HARDIRQ-unsafe lock order detected"
INVERSION = "WARNING: possible irq lock inversion dependency detected"


class RwLock:
    """The selftests' ``WL(x)`` / ``RL(x)`` / ``WU(x)`` / ``RU(x)`` on one ``rwlock_t``;
    ``u()`` is the unlock matching the innermost ``wl``/``rl`` of this lock."""

    def __init__(self, name: str) -> None:
        self.lock = ds.RwLock(name)
        self.modes: list[bool] = []

    def wl(self) -> None:
        self.lock.write_lock()
        self.modes.append(True)

    def rl(self) -> None:
        self.lock.read_lock()
        self.modes.append(False)

    def u(self) -> None:
        if self.modes.pop():
            self.lock.write_unlock()
        else:
            self.lock.read_unlock()


def _irqs_off(k: ds.Kernel, fn: Callable[[], None]) -> None:
    """``IRQ_DISABLE(); fn(); IRQ_ENABLE();``"""
    k.atomic_enter("irqs_disabled", "local_irq_disable")
    fn()
    k.atomic_exit("irqs_disabled", "local_irq_disable")


BAD_SOFTIRQ = "WARNING: SOFTIRQ-safe -> SOFTIRQ-unsafe lock order detected"


class Irq(NamedTuple):
    """One irq state of the irq families: the kernel's ``-hardirq.h`` / ``-softirq.h`` headers."""

    #: ``IRQ_ENTER(); fn(); IRQ_EXIT();``: a handler of this state, waited for.
    enter: Callable[[ds.Kernel, Callable[[], object]], None]
    #: ``IRQ_DISABLE()`` / ``IRQ_ENABLE()``: ``local_irq_disable`` or ``local_bh_disable``.
    disable: Callable[[ds.Kernel], None]
    enable: Callable[[ds.Kernel], None]
    #: The title of the safe -> unsafe order report and the two write usages.
    bad: str
    used_in: str
    enabled: str


def _off(irq: Irq, k: ds.Kernel, fn: Callable[[], object]) -> None:
    """``IRQ_DISABLE(); fn(); IRQ_ENABLE();``"""
    irq.disable(k)
    fn()
    irq.enable(k)


HARD = Irq(lambda k, fn: k.join(k.raise_irq(fn, name="irq")),
           lambda k: k.atomic_enter("irqs_disabled", "local_irq_disable"),
           lambda k: k.atomic_exit("irqs_disabled", "local_irq_disable"),
           BAD_IRQ, "IN-HARDIRQ-W", "HARDIRQ-ON-W")
SOFT = Irq(lambda k, fn: k.join(k.raise_softirq(fn, name="softirq")),
           lambda k: k.local_bh_disable(), lambda k: k.local_bh_enable(),
           BAD_SOFTIRQ, "IN-SOFTIRQ-W", "SOFTIRQ-ON-W")
#: The two irq states, as test parameters.
IRQS = [pytest.param(HARD, id="hard"), pytest.param(SOFT, id="soft")]


@pytest.mark.parametrize("irq", IRQS)
@pytest.mark.parametrize("order", ["12", "21"])
@pytest.mark.parametrize(("kind", "reported"), [("spin", True), ("wlock", True), ("rlock", False)])
def test_irqsafe1(irq: Irq, kind: str, reported: bool, order: str) -> None:
    """An irq-safe lock taken with the irq enabled (a recursive reader in both places is fine)."""

    def body(k: ds.Kernel) -> None:
        a = Lk(kind, "A")

        def e1() -> None:
            irq.enter(k, lambda: (a.lock(), a.unlock()))

        def e2() -> None:
            a.lock()
            a.unlock()

        for step in order:
            (e1 if step == "1" else e2)()

    ex = run_seq(body)
    if not reported:
        assert_clean(ex)
        return
    f = assert_one(ex, "recursive-locking", INCONSISTENT, ["A"])
    assert f.details["usage"] == ([irq.used_in, irq.enabled] if order == "12" else [irq.enabled, irq.used_in])


@pytest.mark.parametrize("irq", IRQS)
@pytest.mark.parametrize("perm", PERMS3)
def test_irq_inversion_spin(irq: Irq, perm: str) -> None:
    """irq-safe A -> irq-unsafe B, in every order of the three events."""

    def body(k: ds.Kernel) -> None:
        a, b = Lk("spin", "A"), Lk("spin", "B")

        def e1() -> None:  # the irq off: A -> B
            _off(irq, k, lambda: lu2(a, b))

        def e2() -> None:  # B with the irq on: irq-unsafe
            b.lock()
            b.unlock()

        def e3() -> None:  # A in the irq: irq-safe
            irq.enter(k, lambda: (a.lock(), a.unlock()))

        for step in perm:
            {"1": e1, "2": e2, "3": e3}[step]()

    f = assert_one(run_seq(body), "circular-locking", irq.bad if perm[-1] == "1" else INVERSION, ["A", "B"])
    assert (f.details["safe"], f.details["unsafe"]) == ("A", "B")


def _run_events(events: dict[str, Callable[[ds.Kernel, dict[str, Any]], None]], perm: str) -> ds.Execution:
    def body(k: ds.Kernel) -> None:
        locks: dict[str, Any] = {"A": RwLock("A"), "B": RwLock("B")}
        for step in perm:
            events[step](k, locks)

    return run_seq(body)


@pytest.mark.parametrize("perm", PERMS3)
@pytest.mark.parametrize(("kind", "reported"), [("rlock", False), ("wlock", True)])
def test_irq_inversion_hard_rwlock(kind: str, reported: bool, perm: str) -> None:
    """irq_inversion with A read in the interrupt: B taken as a recursive reader cannot block it."""

    def lock_b(lk: dict[str, Any]) -> None:
        lk["B"].rl() if kind == "rlock" else lk["B"].wl()

    def e1(k: ds.Kernel, lk: dict[str, Any]) -> None:
        def f() -> None:
            lk["A"].wl()
            lock_b(lk)
            lk["B"].u()
            lk["A"].u()

        _irqs_off(k, f)

    def e2(k: ds.Kernel, lk: dict[str, Any]) -> None:
        lock_b(lk)
        lk["B"].u()

    def e3(k: ds.Kernel, lk: dict[str, Any]) -> None:
        _in_irq(k, lambda: (lk["A"].rl(), lk["A"].u()))

    ex = _run_events({"1": e1, "2": e2, "3": e3}, perm)
    if reported:
        title = BAD_IRQ if perm[-1] == "1" else INVERSION
        assert_one(ex, "circular-locking", title, ["A", "B"])
    else:
        assert_clean(ex)


@pytest.mark.parametrize("irq", IRQS)
@pytest.mark.parametrize("perm", PERMS3)
@pytest.mark.parametrize(("kind", "reported"), [("rlock", False), ("wlock", True)])
def test_irq_read_recursion(irq: Irq, kind: str, reported: bool, perm: str) -> None:
    """A read with irqs on; A taken in the interrupt: as a recursive reader that is safe."""

    def e1(k: ds.Kernel, lk: dict[str, Any]) -> None:
        _off(irq, k, lambda: (lk["A"].wl(), lk["A"].u()))

    def e2(k: ds.Kernel, lk: dict[str, Any]) -> None:
        lk["A"].rl()
        lk["A"].u()

    def e3(k: ds.Kernel, lk: dict[str, Any]) -> None:
        def handler() -> None:
            lk["A"].rl() if kind == "rlock" else lk["A"].wl()
            lk["B"].wl()
            lk["B"].u()
            lk["A"].u()

        irq.enter(k, handler)

    ex = _run_events({"1": e1, "2": e2, "3": e3}, perm)
    if reported:
        assert_one(ex, "recursive-locking", INCONSISTENT, ["A"])
    else:
        assert_clean(ex)


@pytest.mark.parametrize("irq", IRQS)
@pytest.mark.parametrize("perm", PERMS3)
@pytest.mark.parametrize(("kind", "reported"), [("rlock", False), ("wlock", True)])
def test_irq_read_recursion2(irq: Irq, kind: str, reported: bool, perm: str) -> None:
    """irq-safe B -> A, A read with irqs on: unsafe only if B's holder takes A non-recursively."""

    def e1(k: ds.Kernel, lk: dict[str, Any]) -> None:
        def f() -> None:
            lk["B"].wl()
            lk["A"].rl() if kind == "rlock" else lk["A"].wl()
            lk["A"].u()
            lk["B"].u()

        _off(irq, k, f)

    def e2(k: ds.Kernel, lk: dict[str, Any]) -> None:
        lk["A"].rl()
        lk["A"].u()

    def e3(k: ds.Kernel, lk: dict[str, Any]) -> None:
        irq.enter(k, lambda: (lk["B"].wl(), lk["B"].u()))

    ex = _run_events({"1": e1, "2": e2, "3": e3}, perm)
    if reported:
        title = irq.bad if perm[-1] == "1" else INVERSION
        f = assert_one(ex, "circular-locking", title, ["B", "A"])
        assert (f.details["safe"], f.details["unsafe"]) == ("B", "A")
    else:
        assert_clean(ex)


@pytest.mark.parametrize("irq", IRQS)
@pytest.mark.parametrize("perm", PERMS3)
@pytest.mark.parametrize(("kind", "reported"), [("rlock", False), ("wlock", True)])
def test_irq_read_recursion3(irq: Irq, kind: str, reported: bool, perm: str) -> None:
    """B read in the interrupt (IN-R), A read with irqs on (ON-R): B write-held -> A blocks only if A is written."""

    def e1(k: ds.Kernel, lk: dict[str, Any]) -> None:
        def f() -> None:
            lk["B"].wl()
            lk["A"].rl() if kind == "rlock" else lk["A"].wl()
            lk["A"].u()
            lk["B"].u()

        _off(irq, k, f)

    def e2(k: ds.Kernel, lk: dict[str, Any]) -> None:
        lk["A"].rl()
        lk["A"].u()

    def e3(k: ds.Kernel, lk: dict[str, Any]) -> None:
        irq.enter(k, lambda: (lk["B"].rl(), lk["B"].u()))

    ex = _run_events({"1": e1, "2": e2, "3": e3}, perm)
    if reported:
        title = irq.bad if perm[-1] == "1" else INVERSION
        assert_one(ex, "circular-locking", title, ["B", "A"])
    else:
        assert_clean(ex)


#: The hardirq columns of the irq families: LOCK() is spin_lock / write_lock / read_lock
#: (recursive); the kernel's verdict row is spin F, wlock F, rlock S.
IRQ_KINDS = [("spin", True), ("wlock", True), ("rlock", False)]


@pytest.mark.parametrize(("irq", "off"), [
    pytest.param(HARD, HARD, id="2B-hard"),
    pytest.param(SOFT, SOFT, id="2B-soft"),
    pytest.param(SOFT, HARD, id="2A"),  # enabling hardirqs (and so softirqs) with a softirq-safe lock held
])
@pytest.mark.parametrize("order", ["12", "21"])
@pytest.mark.parametrize(("kind", "reported"), IRQ_KINDS)
def test_irqsafe2(irq: Irq, off: Irq, kind: str, reported: bool, order: str) -> None:
    """``irqsafe2B``: the irq enabled again while an irq-safe lock is held (``trace_hardirqs_on``
    / ``trace_softirqs_on`` mark the held locks); ``irqsafe2A``: hardirqs enabled while a
    softirq-safe lock is held (turning hardirqs on turns softirqs on too)."""

    def body(k: ds.Kernel) -> None:
        a = Lk(kind, "A")

        def e1() -> None:
            irq.enter(k, lambda: (a.lock(), a.unlock()))

        def e2() -> None:  # IRQ_DISABLE(); LOCK(A); IRQ_ENABLE(); UNLOCK(A);
            off.disable(k)
            a.lock()
            off.enable(k)
            a.unlock()

        for step in order:
            (e1 if step == "1" else e2)()

    ex = run_seq(body)
    if not reported:
        assert_clean(ex)
        return
    f = assert_one(ex, "recursive-locking", INCONSISTENT, ["A"])
    expected = [irq.used_in, irq.enabled] if order == "12" else [irq.enabled, irq.used_in]
    assert f.details["usage"] == expected


def _irqsafe34(irq: Irq, kind: str, perm: str, irqs_off_in_e1: bool) -> ds.Execution:
    """E1: [IRQ_DISABLE] A -> B [IRQ_ENABLE]; E2: B with irqs on; E3: A in an interrupt."""

    def body(k: ds.Kernel) -> None:
        a, b = Lk(kind, "A"), Lk(kind, "B")

        def e1() -> None:
            (lambda f: _off(irq, k, f) if irqs_off_in_e1 else f())(lambda: lu2(a, b))

        def e2() -> None:
            b.lock()
            b.unlock()

        def e3() -> None:
            irq.enter(k, lambda: (a.lock(), a.unlock()))

        for step in perm:
            {"1": e1, "2": e2, "3": e3}[step]()

    return run_seq(body)


@pytest.mark.parametrize("irq", IRQS)
@pytest.mark.parametrize("perm", PERMS3)
@pytest.mark.parametrize(("kind", "reported"), IRQ_KINDS)
def test_irqsafe3(irq: Irq, kind: str, reported: bool, perm: str) -> None:
    """An irq-unsafe B taken under A, where A is also irq-safe and taken with irqs on."""
    ex = _irqsafe34(irq, kind, perm, irqs_off_in_e1=False)
    if not reported:
        assert_clean(ex)
        return
    fs = lockdep_findings(ex)
    # The kernel stops at its first report: A taken both in the irq and with irqs on.
    assert (fs[0].kind, fs[0].title, fs[0].details["chain"]) == ("recursive-locking", INCONSISTENT, ["A"])
    # Where A -> B comes after A became irq-safe, the model goes on to the safe -> unsafe order too.
    later = [(f.title, f.details["chain"]) for f in fs[1:]]
    assert later == ([(irq.bad, ["A", "B"])] if perm in ("231", "312", "321") else [])


@pytest.mark.parametrize("irq", IRQS)
@pytest.mark.parametrize("perm", PERMS3)
@pytest.mark.parametrize(("kind", "reported"), IRQ_KINDS)
def test_irqsafe4(irq: Irq, kind: str, reported: bool, perm: str) -> None:
    """A turns irq-safe, having taken the irq-unsafe B (A -> B with irqs off)."""
    ex = _irqsafe34(irq, kind, perm, irqs_off_in_e1=True)
    if not reported:
        assert_clean(ex)
        return
    # The last event closes the conflict: a new A -> B edge is the safe -> unsafe order,
    # a lock turning safe or unsafe is the inversion.
    title = irq.bad if perm in ("231", "321") else INVERSION
    f = assert_one(ex, "circular-locking", title, ["A", "B"])
    assert (f.details["safe"], f.details["unsafe"], f.details["state"]) == ("A", "B", irq.used_in.split("-")[1])


def test_irq_disabled_only_is_clean() -> None:
    """A lock only ever taken with interrupts off (or in the irq) is irq-safe and fine."""

    def body(k: ds.Kernel) -> None:
        a = ds.SpinLock("A")
        _in_irq(k, lambda: (a.lock(), a.unlock()))
        a.lock_irqsave()
        a.unlock_irqrestore()

    assert_clean(run_seq(body))


# ---------------------------------------------------------------- ww_mutex context tests

WW = ds.WWClass("ww_lockdep", wait_die=True)
WWM = "ww_lockdep_mutex"


def _ww(body: Callable[[ds.WWMutex, ds.WWMutex], None]) -> ds.Execution:
    def scenario(k: ds.Kernel) -> None:
        body(ds.WWMutex(WW, "o"), ds.WWMutex(WW, "o2"))

    return run_seq(scenario)


def test_ww_context_block() -> None:
    def body(o: ds.WWMutex, o2: ds.WWMutex) -> None:
        t = ds.WWAcquireCtx(WW)
        o.lock(t)
        o2.lock()
        o2.unlock()
        o.unlock()
        t.fini()

    assert_one(_ww(body), "recursive-locking", RECURSIVE, [WWM, WWM])


def test_ww_context_try() -> None:
    def body(o: ds.WWMutex, o2: ds.WWMutex) -> None:
        t = ds.WWAcquireCtx(WW)
        o.lock(t)
        assert o2.trylock()
        o2.unlock()
        o.unlock()
        t.fini()

    assert_clean(_ww(body))


def test_ww_context_context() -> None:
    def body(o: ds.WWMutex, o2: ds.WWMutex) -> None:
        t = ds.WWAcquireCtx(WW)
        o.lock(t)
        o2.lock(t)
        o2.unlock()
        o.unlock()
        t.fini()

    assert_clean(_ww(body))


def test_ww_try_block() -> None:
    def body(o: ds.WWMutex, o2: ds.WWMutex) -> None:
        assert o.trylock()
        o2.lock()
        o2.unlock()
        o.unlock()

    assert_one(_ww(body), "recursive-locking", RECURSIVE, [WWM, WWM])


def test_ww_try_try() -> None:
    def body(o: ds.WWMutex, o2: ds.WWMutex) -> None:
        assert o.trylock()
        assert o2.trylock()
        o2.unlock()
        o.unlock()

    assert_clean(_ww(body))


def test_ww_try_context() -> None:
    def body(o: ds.WWMutex, o2: ds.WWMutex) -> None:
        assert o.trylock()
        t = ds.WWAcquireCtx(WW)
        o2.lock(t)
        o2.unlock()
        o.unlock()
        t.fini()

    assert_one(_ww(body), "recursive-locking", RECURSIVE, [WWM, WWM])


def test_ww_block_block() -> None:
    def body(o: ds.WWMutex, o2: ds.WWMutex) -> None:
        o.lock()
        o2.lock()
        o2.unlock()
        o.unlock()

    assert_one(_ww(body), "recursive-locking", RECURSIVE, [WWM, WWM])


def test_ww_block_try() -> None:
    def body(o: ds.WWMutex, o2: ds.WWMutex) -> None:
        o.lock()
        assert o2.trylock()
        o2.unlock()
        o.unlock()

    assert_clean(_ww(body))


def test_ww_block_context() -> None:
    def body(o: ds.WWMutex, o2: ds.WWMutex) -> None:
        o.lock()
        t = ds.WWAcquireCtx(WW)
        o2.lock(t)
        o2.unlock()
        o.unlock()
        t.fini()

    assert_one(_ww(body), "recursive-locking", RECURSIVE, [WWM, WWM])


def _spin_vs_ww(take: Callable[[ds.WWMutex], None], pre: Callable[[], None] = lambda: None) -> ds.Execution:
    """``A``; [o -> A]; [A -> o] with ``take(o)`` as the ww acquisition."""

    def scenario(k: ds.Kernel) -> None:
        o = ds.WWMutex(WW, "o")
        a = ds.SpinLock("A")
        pre()
        a.lock()
        a.unlock()
        take(o)
        a.lock()
        a.unlock()
        o.unlock()
        a.lock()
        take(o)
        o.unlock()
        a.unlock()

    return run_seq(scenario)


def test_ww_spin_block() -> None:
    ex = _spin_vs_ww(lambda o: o.lock())
    f = assert_one(ex, "circular-locking", CIRCULAR, [WWM, "A"])
    assert f.details["new_edge"] == ["A", WWM]
    # The model also sees what the kernel's might_sleep would: a sleeping lock under a spinlock.
    assert ex.kinds == ["sleep-in-atomic", "circular-locking"]


def test_ww_spin_try() -> None:
    assert_clean(_spin_vs_ww(lambda o: o.trylock() or None))


def test_ww_spin_context() -> None:
    ctx: list[ds.WWAcquireCtx] = []

    def scenario(k: ds.Kernel) -> None:
        o = ds.WWMutex(WW, "o")
        a = ds.SpinLock("A")
        t = ds.WWAcquireCtx(WW)
        ctx.append(t)
        o.lock(t)
        a.lock()
        a.unlock()
        o.unlock()
        a.lock()
        o.lock(t)
        o.unlock()
        a.unlock()
        t.fini()

    ex = run_seq(scenario)
    f = assert_one(ex, "circular-locking", CIRCULAR, [WWM, "A"])
    assert f.details["new_edge"] == ["A", WWM]


def test_ww_spin_nest_lock() -> None:
    def scenario(k: ds.Kernel) -> None:
        x1 = ds.SpinLock("X")
        y1, y2 = ds.SpinLock("Y"), ds.SpinLock("Y")
        a = ds.SpinLock("A")
        x1.lock()
        y1.lock(nest_lock=x1)
        a.lock()
        y2.lock(nest_lock=x1)
        y2.unlock()
        a.unlock()
        y1.unlock()
        x1.unlock()

    assert_clean(run_seq(scenario))


def test_ww_spin_nest_unlocked() -> None:
    def scenario(k: ds.Kernel) -> None:
        o = ds.WWMutex(WW, "o")
        a = ds.SpinLock("A")
        a.lock(nest_lock=o.base)  # raw_spin_lock_nest_lock(&lock_A, &o.base)
        a.unlock()

    fs = lockdep_findings(run_seq(scenario))
    assert [(f.kind, f.title, f.details["lock"], f.details["nest_lock"]) for f in fs] == [
        ("assertion", "WARNING: Nested lock was not taken", "A", WWM)
    ]


def test_ww_normal() -> None:
    """``ww_test_normal``: the plain mutex calls on ``o.base`` take none of the ww paths:
    ``o.ctx`` and the context's count are left exactly as they were, and lockdep is silent."""
    seen: list[tuple[str, bool, int]] = []

    def scenario(k: ds.Kernel) -> None:
        o = ds.WWMutex(WW, "o")
        t = ds.WWAcquireCtx(WW)

        def check(what: str) -> None:
            seen.append((what, o.ctx is t, t.acquired))

        o.ctx = t  # the kernel's o.ctx = (void *)~0UL: a value no ww path would write
        o.base.lock()
        o.base.unlock()
        check("mutex_lock")
        o.base.lock_interruptible()
        o.base.unlock()
        check("mutex_lock_interruptible")
        o.base.lock_killable()
        o.base.unlock()
        check("mutex_lock_killable")
        assert o.base.trylock()
        o.base.unlock()
        check("mutex_trylock succeeding")
        o.base.lock()
        assert not o.base.trylock()
        o.base.unlock()
        check("mutex_trylock failing")
        o.base.lock_nest_lock(t)
        o.base.unlock()
        check("mutex_lock_nest_lock")
        o.ctx = None
        t.fini()

    assert_clean(run_seq(scenario))
    assert seen == [
        (what, True, 0)
        for what in ("mutex_lock", "mutex_lock_interruptible", "mutex_lock_killable",
                     "mutex_trylock succeeding", "mutex_trylock failing", "mutex_lock_nest_lock")
    ]


def test_ww_base_nest_lock_needs_the_context_held() -> None:
    """``mutex_lock_nest_lock(&o.base, &t)`` after ``ww_acquire_fini(&t)``: the nest lock is not held."""

    def scenario(k: ds.Kernel) -> None:
        o = ds.WWMutex(WW, "o")
        t = ds.WWAcquireCtx(WW)
        t.fini()
        o.base.lock_nest_lock(t)
        o.base.unlock()

    fs = lockdep_findings(run_seq(scenario))
    assert [(f.kind, f.title, f.details["lock"], f.details["nest_lock"]) for f in fs] == [
        ("assertion", "WARNING: Nested lock was not taken", WWM, "ww_lockdep_acquire")
    ]


def test_ww_base_nest_lock_allows_many_mutexes_of_the_class() -> None:
    """Two ww_mutexes of one class through ``base`` under their context's nest lock: no recursion report."""

    def scenario(k: ds.Kernel) -> None:
        o, o2 = ds.WWMutex(WW, "o"), ds.WWMutex(WW, "o2")
        t = ds.WWAcquireCtx(WW)
        o.base.lock_nest_lock(t)
        o2.base.lock_nest_lock(t)
        o2.base.unlock()
        o.base.unlock()
        t.fini()

    assert_clean(run_seq(scenario))


def test_ww_unlock_is_not_the_base_unlock() -> None:
    """``ww_mutex_unlock`` (unlike ``mutex_unlock(&o.base)``) clears ``o.ctx`` and drops the
    context's count, warning when there is nothing to drop (``__ww_mutex_unlock``)."""

    def scenario(k: ds.Kernel) -> None:
        o = ds.WWMutex(WW, "o")
        t = ds.WWAcquireCtx(WW)
        o.ctx = t
        o.lock()
        o.unlock()
        assert o.ctx is None
        t.fini()

    fs = run_seq(scenario).findings
    assert [(f.kind, f.details["check"]) for f in fs] == [("ww-usage", "acquired-underflow")]


def test_ww_two_contexts() -> None:
    """``ww_test_two_contexts``: two live acquire contexts of one class in a thread (lockdep's verdict)."""

    def scenario(k: ds.Kernel) -> None:
        t = ds.WWAcquireCtx(WW)
        t2 = ds.WWAcquireCtx(WW)
        t2.fini()
        t.fini()

    acq = "ww_lockdep_acquire"
    assert_one(run_seq(scenario), "recursive-locking", RECURSIVE, [acq, acq])


# ---------------------------------------------------------------- queued_read_lock


def _hardirq(k: ds.Kernel, fn: Callable[[], None]) -> None:
    """``HARDIRQ_ENTER(); fn(); HARDIRQ_EXIT();``"""
    _in_irq(k, fn)


def test_queued_read_lock_hardirq_RE_Er() -> None:
    """A read in the hardirq is recursive, but the process-context reader under B is not:
    a writer queued on A would block it while the hardirq spins on B."""

    def body(k: ds.Kernel) -> None:
        a, b = ds.RwLock("A"), ds.SpinLock("B")

        def handler() -> None:
            a.read_lock()
            b.lock()
            b.unlock()
            a.read_unlock()

        _hardirq(k, handler)

        def off() -> None:
            b.lock()
            a.read_lock()
            a.read_unlock()
            b.unlock()

        _irqs_off(k, off)

    f = assert_one(run_seq(body, force_read_lock_recursive=False), "circular-locking", CIRCULAR, ["A", "B"])
    assert f.details["new_edge"] == ["B", "A"]


def test_queued_read_lock_hardirq_ER_rE() -> None:
    """B -> recursive read of A in the hardirq, non-recursive read of A -> B with irqs off: no deadlock."""

    def body(k: ds.Kernel) -> None:
        a, b = ds.RwLock("A"), ds.SpinLock("B")

        def handler() -> None:
            b.lock()
            a.read_lock()
            a.read_unlock()
            b.unlock()

        _hardirq(k, handler)

        def off() -> None:
            a.read_lock()
            b.lock()
            b.unlock()
            a.read_unlock()

        _irqs_off(k, off)

    assert_clean(run_seq(body, force_read_lock_recursive=False))


def test_queued_read_lock_hardirq_inversion() -> None:
    """hardirq-safe B -> A read non-recursively; A then read with irqs on: both readers are
    non-recursive in process context, so the hardirq taking B can deadlock."""

    def body(k: ds.Kernel) -> None:
        a, b = ds.RwLock("A"), ds.SpinLock("B")
        _hardirq(k, lambda: (b.lock(), b.unlock()))

        def off() -> None:
            b.lock()
            a.read_lock()
            a.read_unlock()
            b.unlock()

        _irqs_off(k, off)
        a.read_lock()
        a.read_unlock()

    f = assert_one(run_seq(body, force_read_lock_recursive=False), "circular-locking", INVERSION, ["B", "A"])
    assert (f.details["safe"], f.details["unsafe"]) == ("B", "A")


def test_queued_read_lock_forced_recursive_hides_inversion() -> None:
    """The same inversion with ``force_read_lock_recursive`` (the selftests' main run): a
    recursive reader with irqs on cannot be blocked by B's holder, so lockdep is silent."""

    def body(k: ds.Kernel) -> None:
        a, b = ds.RwLock("A"), ds.SpinLock("B")
        _hardirq(k, lambda: (b.lock(), b.unlock()))

        def off() -> None:
            b.lock()
            a.read_lock()
            a.read_unlock()
            b.unlock()

        _irqs_off(k, off)
        a.read_lock()
        a.read_unlock()

    assert_clean(run_seq(body))


# ---------------------------------------------------------------- might_sleep under an rwlock

RWLOCK_SECTIONS = {
    "read_lock": ("read_lock", "read_unlock", "rwlock"),
    "read_lock_irq": ("read_lock_irq", "read_unlock_irq", "rwlock"),
    "read_lock_irqsave": ("read_lock_irqsave", "read_unlock_irqrestore", "rwlock"),
    "read_lock_bh": ("read_lock_bh", "read_unlock_bh", "rwlock"),
    "write_lock": ("write_lock", "write_unlock", "rwlock"),
    "write_lock_irq": ("write_lock_irq", "write_unlock_irq", "rwlock"),
    "write_lock_irqsave": ("write_lock_irqsave", "write_unlock_irqrestore", "rwlock"),
    "write_lock_bh": ("write_lock_bh", "write_unlock_bh", "rwlock"),
}


@pytest.mark.parametrize("flavour", sorted(RWLOCK_SECTIONS))
def test_might_sleep_under_rwlock(flavour: str) -> None:
    """An rwlock spins: holding it in either mode is atomic, so a sleeping call inside is reported."""
    lock_fn, unlock_fn, what = RWLOCK_SECTIONS[flavour]

    def body(k: ds.Kernel) -> None:
        a = ds.RwLock("A")
        getattr(a, lock_fn)()
        k.might_sleep("msleep")
        getattr(a, unlock_fn)()
        k.might_sleep("msleep")  # after the unlock: process context again

    ex = run_seq(body)
    assert [(f.kind, f.details["call"], f.details["atomic"][-1]["what"], f.details["atomic"][-1]["name"])
            for f in ex.findings] == [("sleep-in-atomic", "msleep", what, "A")]
    irqs = "irq" in flavour
    assert ex.findings[0].details["irqs_disabled"] is irqs
