"""seqcount: readers retry across writers, readers wait out a write, writer-context checks."""

from __future__ import annotations

import dmabufsim as ds
from tests.helpers import run, run_first


class Pair:
    """Two fields a writer keeps equal inside its write sections."""

    def __init__(self) -> None:
        self.x = 0
        self.y = 0


def writer(k: ds.Kernel, lock: ds.SpinLock, sc: ds.SeqCount, p: Pair, n: int) -> None:
    for _ in range(n):
        with lock, sc:
            p.x += 1
            k.point("store_x", 1, True)
            p.y += 1
            k.point("store_y", 2, True)


def test_reader_with_retry_never_sees_a_torn_pair() -> None:
    seen: list[tuple[int, int]] = []
    retries = [0]

    def reader(k: ds.Kernel, sc: ds.SeqCount, p: Pair) -> None:
        for _ in range(3):
            while True:
                start = sc.read_begin()
                assert start % 2 == 0
                x = p.x
                k.point("load_x", 1, False)
                y = p.y
                if not sc.read_retry(start):
                    break
                retries[0] += 1
            seen.append((x, y))

    def scenario(k: ds.Kernel) -> None:
        lock = ds.SpinLock("pair_lock")
        sc = ds.SeqCount("pair_seq", lock=lock)
        p = Pair()
        k.spawn(writer, k, lock, sc, p, 3, name="writer")
        k.spawn(reader, k, sc, p, name="reader")

    for seed in range(40):
        ex = run(scenario, seed=seed)
        assert ex.findings == [] and ex.outcome == "completed", seed
    assert seen and all(x == y for x, y in seen)
    assert retries[0] > 0, "no schedule made the reader retry"


def test_reader_without_retry_can_see_a_torn_pair() -> None:
    """The same reader minus read_retry: some schedule shows x != y (the test above can fail)."""
    torn: list[tuple[int, int]] = []

    def reader(k: ds.Kernel, sc: ds.SeqCount, p: Pair) -> None:
        x = p.x
        k.point("load_x", 1, False)
        y = p.y
        if x != y:
            torn.append((x, y))

    def scenario(k: ds.Kernel) -> None:
        lock = ds.SpinLock("pair_lock")
        sc = ds.SeqCount("pair_seq", lock=lock)
        p = Pair()
        k.spawn(writer, k, lock, sc, p, 3, name="writer")
        k.spawn(reader, k, sc, p, name="reader")

    for seed in range(40):
        run(scenario, seed=seed)
    assert torn


def test_read_begin_waits_for_the_write_section() -> None:
    got: list[int] = []

    def reader(sc: ds.SeqCount) -> None:
        got.append(sc.read_begin())

    def scenario(k: ds.Kernel) -> None:
        lock = ds.Mutex("m")
        sc = ds.SeqCount("seq", lock=lock)
        lock.lock()
        sc.write_begin()
        assert sc.raw_read() == 1
        r = k.spawn(reader, sc, name="reader")
        k.msleep(1)  # the reader runs, finds the count odd, waits
        assert got == [] and sc.spinners == [r]
        sc.write_end()
        lock.unlock()
        k.join(r)

    ex = run_first(scenario)
    assert ex.findings == []
    assert got == [2]


def test_plain_seqcount_writer_must_be_atomic() -> None:
    def scenario(k: ds.Kernel) -> None:
        sc = ds.SeqCount("seq")
        sc.write_begin()
        sc.write_end()
        k.atomic_enter("preempt_disable", "test")
        with sc:
            pass
        k.atomic_exit("preempt_disable", "test")

    ex = run_first(scenario)
    assert ex.kinds == ["assertion"]
    assert ex.findings[0].details == {"seqcount": "seq", "check": "preemptible-writer"}
    assert ex.findings[0].title == "WARNING: write_seqcount_begin in preemptible context"


def test_associated_lock_must_be_held() -> None:
    def scenario(k: ds.Kernel) -> None:
        m = ds.Mutex("seq_mutex")
        sc = ds.SeqCount("seq", lock=m)
        with sc:
            pass
        with m, sc:
            pass

    ex = run_first(scenario)
    assert ex.kinds == ["assertion"]
    assert ex.findings[0].title == "WARNING: lockdep_assert_held(seq_mutex) failed"


def test_concurrent_writers_are_reported() -> None:
    def w(k: ds.Kernel, sc: ds.SeqCount) -> None:
        k.atomic_enter("preempt_disable", "w")
        sc.write_begin()
        k.point("store", 1, True)
        sc.write_end()
        k.atomic_exit("preempt_disable", "w")

    def scenario(k: ds.Kernel) -> None:
        sc = ds.SeqCount("seq")
        k.spawn(w, k, sc, name="w1")
        k.spawn(w, k, sc, name="w2")

    found = False
    for seed in range(20):
        ex = run(scenario, seed=seed)
        if ex.findings:
            assert ex.kinds == ["assertion"]
            assert ex.findings[0].details["check"] == "concurrent-writers"
            found = True
    assert found


def test_unbalanced_write_end() -> None:
    def scenario(k: ds.Kernel) -> None:
        sc = ds.SeqCount("seq")
        sc.write_end()

    ex = run_first(scenario)
    assert ex.kinds == ["assertion"]
    assert ex.findings[0].details["check"] == "unbalanced-end"


def test_invalidate_forces_retry() -> None:
    got: list[bool] = []

    def scenario(k: ds.Kernel) -> None:
        sc = ds.SeqCount("seq")
        s = sc.read_begin()
        got.append(sc.read_retry(s))
        sc.invalidate()
        got.append(sc.read_retry(s))
        got.append(sc.read_begin() % 2 == 0)

    assert run_first(scenario).findings == []
    assert got == [False, True, True]


def test_seqcount_ww_mutex_writer_holds_the_reservation_lock() -> None:
    """``seqcount_ww_mutex_t`` (the 2018 ``reservation_object.seq``): written under the ww_mutex."""
    cls = ds.WWClass("reservation_ww_class")

    def scenario(k: ds.Kernel) -> None:
        lock = ds.WWMutex(cls, "resv")
        sc = ds.SeqCount("reservation_seqcount", lock=lock)
        with ds.WWAcquireCtx(cls) as ctx:
            lock.lock(ctx)
            with sc:  # preemptible, but serialised by the held ww_mutex: fine
                k.point("store", 1, True)
            lock.unlock()
        with sc:  # not held: reported
            pass

    ex = run_first(scenario)
    assert ex.kinds == ["assertion"]
    assert ex.findings[0].title == "WARNING: lockdep_assert_held(reservation_ww_class_mutex) failed"
