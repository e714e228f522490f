"""RCU: read sections are atomic and nest; synchronize_rcu waits for exactly the pre-existing readers."""

from __future__ import annotations

import dmabufsim as ds
from tests.helpers import run, run_first


def test_read_section_is_atomic_and_nests() -> None:
    states: list[tuple[bool, bool, int]] = []

    def snap(k: ds.Kernel) -> None:
        t = k.current
        states.append((ds.rcu_read_lock_held(), t.is_atomic, sum(hl.read == 2 for hl in t.held)))

    def scenario(k: ds.Kernel) -> None:
        ds.rcu_read_lock()
        snap(k)
        with ds.rcu_read_section:
            snap(k)
        snap(k)
        ds.rcu_read_unlock()
        snap(k)

    assert run_first(scenario).findings == []
    assert states == [(True, True, 1), (True, True, 2), (True, True, 1), (False, False, 0)]


def test_sleeping_in_read_section_is_reported() -> None:
    def scenario(k: ds.Kernel) -> None:
        with ds.rcu_read_section:
            k.msleep(1)

    ex = run_first(scenario)
    assert ex.kinds == ["sleep-in-atomic"]
    assert ex.findings[0].details["atomic"][0]["what"] == "rcu_read_lock"
    assert ex.findings[0].details["atomic"][0]["name"] == "rcu"


def test_synchronize_rcu_waits_for_preexisting_readers_over_seeds() -> None:
    """Invariant: when synchronize_rcu returns, every reader inside at its call has left that section."""
    violations: list[tuple[int, str]] = []
    waited = [0]

    def reader(k: ds.Kernel, i: int, inside: dict[str, int], left: set[tuple[str, int]]) -> None:
        for sec in range(2):
            with ds.rcu_read_section:
                inside[f"r{i}"] = sec
                for _ in range(3):
                    k.point("deref", 7, False)
                del inside[f"r{i}"]
                left.add((f"r{i}", sec))
            k.point("outside", 8, False)

    def updater(k: ds.Kernel, inside: dict[str, int], left: set[tuple[str, int]], seed: int) -> None:
        k.point("publish", 7, True)
        before = dict(inside)
        ds.synchronize_rcu()
        for name, sec in before.items():
            if (name, sec) not in left:
                violations.append((seed, name))
        if before:
            waited[0] += 1

    def make(seed: int):  # type: ignore[no-untyped-def]
        def scenario(k: ds.Kernel) -> None:
            inside: dict[str, int] = {}
            left: set[tuple[str, int]] = set()
            for i in range(3):
                k.spawn(reader, k, i, inside, left, name=f"r{i}")
            k.spawn(updater, k, inside, left, seed, name="updater")

        return scenario

    for seed in range(60):
        ex = run(make(seed), seed=seed)
        assert ex.findings == [] and ex.outcome == "completed", seed
    assert violations == []
    assert waited[0] > 0, "no schedule had a reader inside at synchronize_rcu"


def test_new_readers_do_not_extend_the_grace_period() -> None:
    """A reader entering after synchronize_rcu started does not delay it (R2)."""
    log: list[str] = []
    overlapped = [0]

    def old_reader(k: ds.Kernel) -> None:
        ds.rcu_read_lock()
        log.append("old in")
        for _ in range(4):
            k.point("deref", 7, False)
        ds.rcu_read_unlock()
        log.append("old out")

    def new_reader(k: ds.Kernel, updater: ds.KThread, release: ds.Completion) -> None:
        # Enter only once the updater waits for its grace period (or is past it).
        while "gp done" not in log:
            on = updater.blocked_on
            if on is not None and on[0] == "synchronize_rcu":
                break
            k.point("poll", 9, False)
        ds.rcu_read_lock()
        log.append("new in")
        while not release.completion_done():  # stay inside until the updater is done
            k.point("spin", 9, False)
        ds.rcu_read_unlock()
        log.append("new out")

    def scenario(k: ds.Kernel) -> None:
        release = ds.Completion("release")
        old = k.spawn(old_reader, k, name="old")
        k.point("wait_old", 9, False)
        if "old in" in log:
            k.spawn(new_reader, k, k.current, release, name="new")
        ds.synchronize_rcu()
        log.append("gp done")
        release.complete()
        k.join(old)

    for seed in range(30):
        log.clear()
        ex = run(scenario, seed=seed)
        assert ex.findings == [] and ex.outcome == "completed", seed
        if "old in" in log and log.index("old in") < log.index("gp done"):
            assert log.index("old out") < log.index("gp done")
        if "new in" in log and log.index("new in") < log.index("gp done"):
            assert log.index("gp done") < log.index("new out")
            overlapped[0] += 1
    assert overlapped[0] > 0


def test_synchronize_rcu_inside_read_section_is_reported_not_hung() -> None:
    def scenario(k: ds.Kernel) -> None:
        with ds.rcu_read_section:
            ds.synchronize_rcu()

    ex = run_first(scenario)
    assert ex.kinds == ["sleep-in-atomic"]
    assert ex.findings[0].details["call"] == "synchronize_rcu"
    assert ex.outcome == "completed"


def test_unbalanced_unlock() -> None:
    def scenario(k: ds.Kernel) -> None:
        ds.rcu_read_unlock()

    ex = run_first(scenario)
    assert ex.kinds == ["assertion"]
    assert ex.findings[0].title == "WARNING: rcu_read_unlock() without rcu_read_lock()"


def test_reader_exiting_inside_section_is_reported() -> None:
    def scenario(k: ds.Kernel) -> None:
        ds.rcu_read_lock()

    ex = run_first(scenario)
    assert ex.kinds == ["leak"]
    assert ex.findings[0].details["locks"] == ["rcu_read_lock"]


def test_trace_events_carry_the_class_name() -> None:
    def scenario(k: ds.Kernel) -> None:
        with ds.rcu_read_section:
            pass
        ds.synchronize_rcu()

    ex = run_first(scenario, record_trace=True)
    assert ex.events is not None
    assert [(e.op, e.detail, e.write) for e in ex.events] == [
        ("rcu_read_lock", "rcu_read_lock", False),
        ("rcu_read_unlock", "rcu_read_lock", False),
        ("synchronize_rcu", "rcu_read_lock", True),
    ]
