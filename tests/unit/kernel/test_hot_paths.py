"""The hot paths' shortcuts compute exactly what the plain code computes.

Kernel.point inlines Trace.emit's digest, locks pass precomputed event words,
RandomStrategy inlines randrange, tokens encode small choices in one step and
findings get their token without dataclasses.replace: each is checked here
against the straightforward version (no timing is asserted).
"""

from __future__ import annotations

import dataclasses
import random
import zlib
from collections.abc import Sequence

import pytest

import dmabufsim as ds
from dmabufsim.explore.random_walk import RandomWalk
from dmabufsim.kernel import token as tok
from dmabufsim.kernel import trace
from dmabufsim.kernel.execution import EXECUTION_FIELDS, Execution
from dmabufsim.kernel.findings import Finding
from dmabufsim.kernel.strategy import RandomStrategy
from dmabufsim.kernel.thread import KThread
from dmabufsim.kernel.trace import Trace, event_word

_MASK = (1 << 64) - 1
_PRIME = 0x100000001B3


def _reference_digest(events: list[tuple[int, str, int, bool, str, int]], chunk: int = trace.CHUNK) -> str:
    """The trace digest as specified (trace T1-T3): each event's word, then ``-now`` when
    ``now > 0``; the words hashed a batch of ``chunk`` at a time; the event count last."""
    words: list[int] = []
    for tid, op, obj, write, detail, now in events:
        x = ((tid + 1) << 52) ^ (zlib.crc32(op.encode()) << 20) ^ (obj << 1) ^ write
        if detail:
            x ^= zlib.crc32(detail.encode()) << 32
        words.append(x)
        if now:
            words.append(-now)
    h = 0xCBF29CE484222325
    for i in range(0, len(words), chunk):
        h = hash((h, tuple(words[i : i + chunk])))
    return f"{(((h & _MASK) ^ len(events)) * _PRIME) & _MASK:016x}"


def test_emit_digest_matches_the_reference() -> None:
    rng = random.Random(5)
    events = [
        (rng.randrange(-1, 9), rng.choice(["a", "mutex_lock", "spin_unlock"]), rng.randrange(-1, 1 << 40),
         rng.random() < 0.5, rng.choice(["", "lock", "x" * 30]), rng.choice([0, 5, rng.randrange(1 << 63)]))
        for _ in range(300)
    ]
    for record in (False, True):
        tr = Trace(record=record)
        for i, (tid, op, obj, write, detail, now) in enumerate(events):
            tr.emit(i, tid, op, obj, write, detail, now)
        assert tr.digest == _reference_digest(events)


def test_digest_does_not_depend_on_when_words_are_folded(monkeypatch: pytest.MonkeyPatch) -> None:
    """Trace T2: batches are cut at fixed word counts, so folding early, late, often or
    never (and reading the digest midway) gives one digest; another batch size another."""
    monkeypatch.setattr(trace, "CHUNK", 8)
    rng = random.Random(9)
    events = [(rng.randrange(4), "op", rng.randrange(50), True, "", rng.choice([0, 0, 3])) for _ in range(101)]
    digests = set()
    for fold_every in (1, 3, 8, 17, 1000):
        tr = Trace()
        for i, (tid, op, obj, write, detail, now) in enumerate(events):
            tr.emit(i, tid, op, obj, write, detail, now)
            if i % fold_every == 0:
                tr.fold()
                assert len(tr.words) < 8
            if i == 50:
                assert tr.digest == _reference_digest(events[:51], chunk=8)
        digests.add(tr.digest)
    assert digests == {_reference_digest(events, chunk=8)}
    assert _reference_digest(events, chunk=8) != _reference_digest(events, chunk=16)


def test_point_digest_with_and_without_words_matches_the_reference() -> None:
    seen: list[tuple[int, str, int, bool, str, int]] = []

    def scenario(k: ds.Kernel) -> None:
        m = ds.Mutex("m")
        s = ds.SpinLock("s")
        for i in range(3):
            with m:
                k.point("work", i, i % 2 == 0, "d" if i else "")
            with s:
                pass
            k.point("w", 7, True, "n", event_word("w", 7, True, "n"))

    for record in (False, True):
        ex = ds.Kernel(seed=1, record_trace=record).run(scenario)
        if record:
            assert ex.events is not None
            seen = [(e.tid, e.op, e.obj, e.write, e.detail, e.now) for e in ex.events]
        else:
            plain = ex.trace_digest
    assert plain == ex.trace_digest == _reference_digest(seen)


def test_random_strategy_draws_the_randrange_stream() -> None:
    for seed in range(20):
        st = RandomStrategy(seed)
        ref = random.Random(seed)
        for n in (2, 3, 5, 2, 7, 8, 9, 2, 3, 17) * 5:
            runnable = list(range(n))
            assert st.next_thread(runnable, None) == runnable[ref.randrange(n)]  # type: ignore[arg-type]
            assert st.next_u64(n) == ref.randrange(n)


def test_varints_fast_and_slow_paths_agree() -> None:
    for choices in ([], [0], [1, 2, 3, 127], [128], [0, 300, 5], list(range(200)), [2**40, 1]):
        slow = bytearray()
        for v in choices:
            while True:
                b, v = v & 0x7F, v >> 7
                slow.append(b | 0x80 if v else b)
                if not v:
                    break
        assert tok.varints(choices) == bytes(slow) == tok.varints(iter(choices))
        assert tok.decode(tok.encode(choices)) == choices


def test_with_token_is_replace() -> None:
    f = Finding(kind="deadlock", title="t", details={"a": 1}, rule="r", step=3, now=4, report="x")
    assert f.with_token("tok") == dataclasses.replace(f, token="tok")
    names = {fld.name for fld in dataclasses.fields(Finding)}
    assert all(getattr(f.with_token("z"), n) == getattr(f, n) for n in names - {"token"})


def test_pooled_greenlets_keep_threads_apart() -> None:
    """Threads reuse pooled greenlets: results, stacks of blocked threads and teardown stay per thread."""

    def worker(k: ds.Kernel, m: ds.Mutex, out: list[int], i: int) -> int:
        with m:
            k.point("work", i, True)
        out.append(i)
        return i * 10

    def scenario(k: ds.Kernel) -> list[int]:
        m = ds.Mutex("m")
        out: list[int] = []
        ts = [k.spawn(worker, k, m, out, i, name=f"w{i}") for i in range(5)]
        res = [k.join(t) for t in ts]
        assert sorted(out) == list(range(5))
        return res

    for seed in range(5):
        ex = ds.Kernel(seed=seed).run(scenario)
        assert ex.findings == [] and ex.outcome == "completed"

    def stuck(k: ds.Kernel) -> None:
        a, b = ds.Mutex("A"), ds.Mutex("B")

        def one(x: ds.Mutex, y: ds.Mutex) -> None:
            with x:
                k.point("between", 0)
                with y:
                    pass

        k.spawn(one, a, b, name="t1")
        k.spawn(one, b, a, name="t2")

    kinds = set()
    for seed in range(30):
        ex = ds.Kernel(seed=seed, lockdep=False).run(stuck)
        kinds.update(ex.kinds)
        for f in ex.by_kind("deadlock"):
            assert {t.name for t in f.threads} == {"t1", "t2"}
            assert all(t.stack for t in f.threads)
    assert "deadlock" in kinds


def _rotating_locks(k: ds.Kernel) -> None:
    """Four workers, each taking three mutexes in turn thirty times: many preemption choices."""
    locks = [ds.Mutex(f"m{i}") for i in range(3)]

    def worker(i: int) -> None:
        for j in range(30):
            with locks[(i + j) % 3]:
                k.point("work", 100 + i, True)

    for i in range(4):
        k.spawn(worker, i, name=f"w{i}")


class _PlainRandom(RandomStrategy):
    """RandomStrategy by method call: a subclass is not inlined by Kernel.point."""


def test_point_inlines_random_strategy_without_changing_any_schedule() -> None:
    for seed in range(12):
        inlined = ds.Kernel(seed=seed).run(_rotating_locks)
        assert inlined.strategy == f"random(seed={seed})"
        plain = ds.Kernel(strategy=_PlainRandom(seed)).run(_rotating_locks)
        assert (inlined.token, inlined.trace_digest, inlined.steps, inlined.preemptions) == (
            plain.token, plain.trace_digest, plain.steps, plain.preemptions), seed


def test_digest_counts_inlined_and_emitted_events_alike_even_when_a_listener_joins_midway() -> None:
    def scenario(k: ds.Kernel, subscribe_at: int) -> None:
        m = ds.Mutex("m")

        def worker(i: int) -> None:
            for j in range(20):
                if i == 0 and j == subscribe_at:
                    k.trace.subscribe(lambda ev: None)
                with m:
                    k.point("work", 7, True)
                k.event("dma", 9, True, "x")

        for i in range(3):
            k.spawn(worker, i, name=f"w{i}")

    plain = ds.Kernel(seed=4).run(scenario, -1)
    recorded = ds.Kernel(seed=4, record_trace=True).run(scenario, -1)
    midway = ds.Kernel(seed=4).run(scenario, 10)
    assert plain.trace_digest == recorded.trace_digest == midway.trace_digest
    assert plain.token == recorded.token == midway.token


class _PlainWalk(RandomWalk):
    """The explorer's random walk by method call: overriding next_thread turns Strategy.uniform off."""

    def next_thread(self, runnable: Sequence[KThread], current: KThread | None) -> KThread:
        return super().next_thread(runnable, current)


def test_point_draws_a_uniform_strategy_inline_without_changing_any_schedule() -> None:
    inline, plain = RandomWalk(3), _PlainWalk(3)
    assert inline.uniform is not None and plain.uniform is None
    for index in range(12):
        runs = []
        for strat in (inline, plain):
            strat.index = index
            strat.new_execution()
            runs.append(ds.Kernel(strategy=strat).run(_rotating_locks))
        a, b = runs
        assert (a.token, a.trace_digest, a.steps, a.preemptions) == (b.token, b.trace_digest, b.steps,
                                                                     b.preemptions), index


def test_execution_of_is_the_frozen_dataclass_with_every_field() -> None:
    ex = ds.Kernel(seed=2).run(lambda k: k.report("assertion", "x", signature="x"))
    assert set(ex.__dict__) == EXECUTION_FIELDS
    built = Execution(**{f.name: getattr(ex, f.name) for f in dataclasses.fields(Execution)})
    assert built == ex and built.token == ex.token
    with pytest.raises(dataclasses.FrozenInstanceError):
        ex.steps = 3  # type: ignore[misc]


def test_a_phase_shares_one_config_and_unknown_options_still_fail_as_before() -> None:
    configs: list[int] = []

    def scenario(k: ds.Kernel) -> None:
        configs.append(id(k.config))
        assert k.config.lockdep is False and k.config.max_steps == 77
        k.spawn(lambda: k.point("x", 10_000, True), name="a")
        k.point("y", 10_000, True)

    rep = ds.explore(scenario, "random", budget=5, stop_on_first=False,
                     kernel_options={"lockdep": False, "max_steps": 77})
    assert rep.executions == 5 and len(set(configs)) == 1
    with pytest.raises(ds.UsageError, match=r"unknown Kernel option\(s\) \['no_such'\]"):
        ds.explore(scenario, "random", budget=2, kernel_options={"no_such": 1})
