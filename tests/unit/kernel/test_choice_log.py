"""The replay log (kernel.choices R1-R3): compact as it grows, same token, same choices."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

import dmabufsim as ds
from dmabufsim.kernel import runtime
from dmabufsim.kernel import token as tok
from dmabufsim.kernel.choices import ChoiceLog, Choices


@given(st.lists(st.lists(st.integers(0, 70_000), max_size=40), max_size=6))
def test_compacted_log_decodes_to_the_same_choices(batches: list[list[int]]) -> None:
    log = ChoiceLog()
    want: list[int] = []
    for b in batches:
        log.recent.extend(b)
        want.extend(b)
        log.compact()
        assert log.recent == [] and len(log) == len(want)
    log.recent.extend([3, 1, 4])  # a tail never compacted
    want.extend([3, 1, 4])
    token, choices = log.finish()
    assert tok.decode(token) == want
    assert list(choices) == want and len(choices) == len(want)
    assert choices == tuple(want)


def test_uncompacted_log_encodes_exactly_as_token_encode() -> None:
    log = ChoiceLog()
    log.recent.extend([0, 1, 1, 2, 300, 0])
    token, choices = log.finish()
    assert token == tok.encode([0, 1, 1, 2, 300, 0])
    assert choices == (0, 1, 1, 2, 300, 0) and isinstance(choices, tuple)


def test_lazy_choices_decode_once_and_compare() -> None:
    log = ChoiceLog()
    log.recent.extend(range(1000))
    log.compact()
    _, choices = log.finish()
    assert isinstance(choices, Choices)
    assert len(choices) == 1000  # known without decoding
    assert choices._list is None
    assert choices[999] == 999 and choices[10:13] == [10, 11, 12]
    assert choices._list is not None


def _pingpong(k: ds.Kernel) -> None:
    m = ds.Mutex("m")

    def worker() -> None:
        for _ in range(200):
            with m:
                k.point("work", 0, True)

    for i in range(3):
        k.spawn(worker, name=f"w{i}")


def test_long_execution_compacts_its_log_and_still_replays(monkeypatch: pytest.MonkeyPatch) -> None:
    full = ds.Kernel(seed=5).run(_pingpong)
    assert isinstance(full.choices, tuple)  # short of the default threshold: never compacted
    monkeypatch.setattr(runtime, "COMPACT_AT", 64)
    ex = ds.Kernel(seed=5).run(_pingpong)
    assert isinstance(ex.choices, Choices) and len(ex.choices) > 64 * 4
    # Compaction changes how the log is stored, not what it says.
    assert ex.choices == full.choices
    assert ex.trace_digest == full.trace_digest and ex.steps == full.steps
    assert tok.decode(ex.token) == list(full.choices)
    again = ds.Kernel(replay=ex.token).run(_pingpong)
    assert again.trace_digest == ex.trace_digest and again.diverged_at is None
    # Determinism: the same seed compacts the same way into the same token.
    assert ds.Kernel(seed=5).run(_pingpong).token == ex.token


def test_livelock_budget_still_holds_with_the_periodic_check(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runtime, "COMPACT_AT", 16)

    def spin(k: ds.Kernel) -> None:
        while True:
            k.point("poll", 1, False)

    ex = ds.Kernel(seed=0, max_steps=100).run(spin)
    assert ex.kinds == ["livelock"] and ex.outcome == "livelock"
    assert ex.steps == 101


def test_returned_irq_threads_leave_the_table_unless_events_are_recorded() -> None:
    seen: dict[str, object] = {}

    def scenario(k: ds.Kernel) -> None:
        handlers = [k.raise_irq(lambda i=i: i * 2, name=f"irq{i}") for i in range(50)]
        results = [k.join(h) for h in handlers]
        seen["results"] = results
        seen["table"] = [t.name for t in k.threads]
        seen["retired"] = k.irq_threads_retired
        seen["tids"] = [h.tid for h in handlers]

    ex = ds.Kernel(seed=3).run(scenario)
    assert ex.findings == []
    assert seen["results"] == [i * 2 for i in range(50)]  # joining a retired handler still works
    assert seen["table"] == ["scenario"] and seen["retired"] == 50
    assert seen["tids"] == list(range(1, 51))  # tids stay creation order
    assert [t.name for t in ex.threads] == ["scenario"]
    rec = ds.Kernel(seed=3, record_trace=True).run(scenario)
    assert seen["retired"] == 0 and len(seen["table"]) == 51  # type: ignore[arg-type]
    assert rec.trace_digest == ex.trace_digest  # the table is bookkeeping, not behaviour


def test_token_is_made_on_first_use_and_is_the_encoded_choices() -> None:
    """choices R2: a clean execution encodes no token until asked; a finding's does at once."""
    clean = ds.Kernel(seed=3).run(_pingpong)
    assert not clean.findings and clean._token is None
    assert clean.token == tok.encode(clean.choices, clean.scenario_id) and clean._token == clean.token
    assert ds.Kernel(replay=clean.token).run(_pingpong).trace_digest == clean.trace_digest

    def abba(k: ds.Kernel) -> None:
        a, b = ds.Mutex("A"), ds.Mutex("B")

        def one(x: ds.Mutex, y: ds.Mutex) -> None:
            with x, y:
                pass

        k.spawn(one, a, b, name="t1")
        k.spawn(one, b, a, name="t2")

    bad = next(ex for ex in (ds.Kernel(seed=s).run(abba) for s in range(50)) if ex.findings)
    assert bad._token is not None and all(f.token == bad.token for f in bad.findings)
    assert bad.token == tok.encode(bad.choices, bad.scenario_id)
