"""Each clean row names the guarantee its search reached; --strict demands proved (runner R5, catalog R8)."""

from __future__ import annotations

import dataclasses
import json

import pytest

from dmabufsim.cli import main
from dmabufsim.explore import Assurance, Guarantee
from dmabufsim.kernel.errors import UsageError
from dmabufsim.scenarios import ClaimScenario, check, discover
from dmabufsim.scenarios.catalog import Verdict


def _rows() -> tuple[ClaimScenario, ClaimScenario, ClaimScenario]:
    cat = discover()
    proved = cat.get("B1/ordered-mutexes")  # odpor: 2 Mazurkiewicz traces
    bounded = dataclasses.replace(proved, design="ordered-bounded", strategy="dpor", budget=20)
    sampled = dataclasses.replace(proved, design="ordered-sampled", strategy="seeds", budget=10)
    return proved, bounded, sampled


def test_each_clean_row_carries_its_guarantee() -> None:
    res = check(list(_rows()), jobs=1)
    assert [r.status for r in res.rows] == ["match"] * 3
    assert [r.assurance for r in res.rows] == [
        Assurance(Guarantee.PROVED, "odpor", 2, traces=True),
        Assurance(Guarantee.BOUNDED, "dpor", 20, bound=1),
        Assurance(Guarantee.SAMPLED, "seeds", 10),
    ]
    assert [r.guarantee for r in res.rows] == ["proved (2 Mazurkiewicz traces)", "up to 1 preemption", "10 samples"]
    doc = res.to_json()
    assert [r["guarantee"] for r in doc["rows"]] == ["proved", "bounded", "sampled"]
    assert doc["rows"][0]["assurance"]["text"] == (
        "proved: all schedules of this configuration (odpor, 2 Mazurkiewicz traces, unbounded)"
    )
    assert doc["guarantees"] == {"bounded": 1, "proved": 1, "sampled": 1}
    assert res.ok  # not strict: a weaker guarantee is shown, never a failure


def test_a_row_with_a_bug_has_no_guarantee() -> None:
    (r,) = check([discover().get("B1/abba-mutexes")], jobs=1).rows
    assert r.status == "match" and r.assurance is None and r.guarantee == ""
    assert r.to_json()["guarantee"] is None


def test_strict_fails_each_clean_row_not_proved_and_says_so() -> None:
    proved, bounded, sampled = _rows()
    res = check([proved, bounded, sampled], jobs=1, strict=True)
    assert not res.ok
    assert [r.row.key for r in res.unproved] == ["B1/ordered-bounded", "B1/ordered-sampled"]
    assert res.unproved[0].unproved == (
        "B1/ordered-bounded: clean but not proved (exhausted up to 1 preemption (dpor, 20 executions)); "
        "--strict demands proved, or the row's documented reason why it cannot be (its 'unproved' field)"
    )
    assert res.to_json()["unproved"] == [r.unproved for r in res.unproved]
    assert check([proved], jobs=1, strict=True).ok


def test_a_documented_exception_satisfies_strict() -> None:
    _, bounded, _ = _rows()
    excused = dataclasses.replace(bounded, unproved="the state space grows past 10^6 executions")
    res = check([excused], jobs=1, strict=True)
    assert res.ok and res.unproved == []
    assert res.rows[0].to_json()["unproved_reason"] == "the state space grows past 10^6 executions"


def test_only_a_clean_row_may_document_why_it_is_not_proved() -> None:
    row = discover().get("B1/abba-mutexes")
    with pytest.raises(UsageError, match="only a clean row can say why it is not proved"):
        dataclasses.replace(row, unproved="x")
    assert Verdict(clean=True).clean


def test_check_cli_prints_the_guarantee_and_strict_fails_per_row(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from dmabufsim.scenarios import runner

    proved, bounded, _ = _rows()
    real = runner.check

    def only(rows: list[ClaimScenario], **kw: object) -> runner.CheckResult:
        return real([proved, bounded], **kw)  # type: ignore[arg-type]

    monkeypatch.setattr("dmabufsim.report.commands.check", only)
    assert main(["check", "--no-progress", "--jobs", "1", "B1"]) == 0
    out = " ".join(capsys.readouterr().out.split())  # the found column wraps whole words
    assert "proved (2 Mazurkiewicz traces)" in out and "up to 1 preemption" in out
    assert "clean rows proved: 1 of 2 (1 neither proved nor documented)" in out
    assert main(["check", "--strict", "--no-progress", "--jobs", "1", "B1"]) == 1
    out = capsys.readouterr().out
    assert "B1/ordered-bounded: clean but not proved (exhausted up to 1 preemption (dpor, 20 executions))" in out
    assert "clean rows proved: 1 of 2 (1 neither proved nor documented: fails with --strict)" in out
    assert main(["check", "--json", "--no-progress", "--jobs", "1", "B1"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [r["guarantee"] for r in data["rows"]] == ["proved", "bounded"]


def _clean_package_rows() -> list[ClaimScenario]:
    return [r for r in discover() if r.modelled and r.expected is not None and r.expected.clean and not r.same_as]


def test_every_documented_exception_names_a_clean_row_and_is_given_to_it() -> None:
    from dmabufsim.scenarios.proofs import NOT_PROVED

    rows = {r.key: r for r in _clean_package_rows()}
    assert sorted(set(NOT_PROVED) - set(rows)) == []  # no stale entry
    for key, why in NOT_PROVED.items():
        assert rows[key].unproved == why
    # a row sharing another's experiment shares its reason (catalog R6)
    cat = discover()
    assert cat.get("M3/interval-notifier-fork").unproved == NOT_PROVED["C11/helper-fork"]


PROVED_ROWS = [
    "C1/pipelined", "C2/counted-completion",
    "C4/lock-wait-refuse-pinned", "C5/shrinker-trylock", "C6/gfp-noio-unprimed", "C6/nowait-notifier",
    "C7/i915-munmap", "C9/torn-down",
    "C11/helper-mprotect", "C11/noretry-mprotect", "C12/userspace-race",
    "C14/helper", "C14/i915-2018", "C14/unsync", "C16/modern-fork-rogue", "C16/modern-mprotect",
    "C16/modern-munmap-reuse", "C17/root-only-unsync-munmap",
    "M1/evict-waits-bookkeep",
    "M4/gfp-nowait", "M4/prealloc", "M5/exporter-locks", "B1/ordered-mutexes", "B2/trylock-under-spinlock",
    "H1/work-item", "H2/list-reference", "H3/fixed", "H4/trylock", "H5/trylock-recursive", "H6/honours-blockable",
    "H7/paired",
    "H8/take-off-list",
    "H9/locked", "H10/worker", "H11/trylock-purge",
    "H12/gup-before-reservation", "H13/mmget-when-queueing", "H14/alloc-before-lock", "H15/trylock-retry",
    "H16/slowpath",
    "H17/prefault-then-lock",
    "S1/secondary-tlbs", "S2/read-retry", "S3/round-trip", "S4/garbage-collector",
]


def test_the_rows_without_an_exception_are_proved_by_their_own_exploration() -> None:
    from dmabufsim.scenarios.proofs import NOT_PROVED

    assert [r.key for r in _clean_package_rows() if r.key not in NOT_PROVED] == PROVED_ROWS
    res = check([discover().get(k) for k in PROVED_ROWS], jobs=1, strict=True)
    assert res.ok, [r.unproved or r.why for r in res.rows]
    assert all(r.assurance is not None and r.assurance.proved for r in res.rows)
    # one execution per Mazurkiewicz trace. H2 and H3 ran redundant executions while non-releasing fence
    # puts were declared reads of the count (kernel/counter.py C5): every put writes it now. H8 (the
    # scheduler thread's and the interrupt's steps on the job's fences) ran some until each flag bit of
    # a fence was declared apart (dma_fence R13): 78 traces, was 183 executions. C7/i915-munmap runs 3
    # sleep-set blocked executions of 1,026: kswapd's successful trylock of the reservation lock leaves
    # the submission at its ww_mutex_lock point and kswapd itself at the object lock the munmap's
    # notifier holds, so the only enabled thread is the munmap, asleep with that same event (odpor R1,
    # R5): a trace explored already, not one lost (tests/scenarios/test_c07_munmap_proof.py).
    redundant: set[str] = {"C7/i915-munmap"}
    assert all(r.assurance is not None and r.assurance.traces == (r.row.key not in redundant) for r in res.rows)


@pytest.mark.slow
def test_the_whole_catalog_passes_strict() -> None:
    res = check(list(discover()), jobs=2, strict=True)
    assert res.ok, [r.unproved or r.why for r in res.rows if not r.ok or r.unproved]
