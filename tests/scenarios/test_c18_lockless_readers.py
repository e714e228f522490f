"""Claim C18: lockless readers racing add_fence / replace_fences never see a torn list and terminate."""

from __future__ import annotations

import pytest

import dmabufsim as ds
from dmabufsim.dma.fence import LONG_MAX
from dmabufsim.explore.explorer import explore
from dmabufsim.scenarios import c18_lockless_readers as c18

SEEDS = 120


def test_seqcount_readers_are_never_torn_and_terminate_over_many_seeds() -> None:
    restarts = 0
    reads = 0
    for seed in range(SEEDS):
        k = ds.Kernel(seed=seed)
        ex = k.run(c18.scenario)
        assert ex.findings == [], (seed, [str(f) for f in ex.findings])
        assert ex.outcome == "completed"
        assert all(t.state == "exited" for t in ex.threads)
        sh = c18.results(k)
        assert sh.waited == [LONG_MAX]  # the lockless wait for everything returned
        assert all(f.signaled_flag for f in sh.created)
        reads += len(sh.reads)
        restarts += sum(r[5] for r in sh.reads)
        # every result is a state of the list current while the read ran (the scenario's check, re-done)
        for _name, usage, first, last, got, _ in sh.reads:
            assert any(tuple(o for o, u in st if u <= usage) == got for st in sh.states[first : last + 1])
    assert reads > SEEDS  # readers really overlapped the writers
    assert restarts > 0  # and some of them had to start over


def test_readers_without_the_retry_are_torn() -> None:
    torn = []
    for seed in range(40):
        ex = ds.Kernel(seed=seed).run(c18.scenario_no_retry)
        assert set(ex.kinds) <= {"assertion"}
        torn.extend(ex.findings)
    assert torn, "the torn-list check never fired: it could not tell the designs apart"
    f = torn[0]
    assert f.title == "lockless reader observed a torn fence list"
    assert f.rule.startswith("dma_resv R6")
    states = [tuple(tuple(e) for e in st) for st in f.details["states"]]
    usage = ds.dma.DmaResvUsage[f.details["usage"]]
    got = tuple(f.details["result"])
    assert all(tuple(o for o, u in st if u <= usage) != got for st in states)


def test_replay_rebuilds_a_torn_execution() -> None:
    for seed in range(40):
        ex = ds.Kernel(seed=seed).run(c18.scenario_no_retry)
        if ex.findings:
            again = ds.Kernel(replay=ex.token).run(c18.scenario_no_retry)
            assert again.trace_digest == ex.trace_digest
            assert [f.details for f in again.findings] == [f.details for f in ex.findings]
            return
    raise AssertionError("no torn execution to replay")


def test_catalog_rows() -> None:
    rows = {r["design"]: r for r in c18.CLAIMS}
    assert rows["seqcount"]["expected"] == "clean" and rows["seqcount"]["scenario"] is c18.scenario
    assert rows["no-retry"]["expected"] == {"kinds": ["assertion"], "asserts": ["c18-torn"]}
    assert all(r["id"] == "C18" for r in c18.CLAIMS)


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["pct", "dpor"])
def test_explorer_finds_no_torn_list_with_the_seqcount(strategy: str) -> None:
    report = explore(c18.scenario, strategy, budget=300, stop_on_first=True, confirm_cycles=False)
    assert report.findings == [], [f.kind for f in report.findings]
    assert report.executions > 1


@pytest.mark.slow
def test_explorer_finds_the_torn_list_without_the_retry() -> None:
    report = explore(c18.scenario_no_retry, "pct", budget=300, expected=["assertion"], confirm_cycles=False)
    assert [f.kind for f in report.findings][:1] == ["assertion"]
    assert report.ok
