"""The catalog registry: verdict matching (catalog R1-R2), discovery and selection."""

from __future__ import annotations

import types

import pytest

import dmabufsim as ds
from dmabufsim.scenarios import catalog as cat_mod
from dmabufsim.scenarios.catalog import ClaimScenario, Found, Verdict, discover, rows_of_module, same_cycle


def found(*kinds: str, chains: tuple[tuple[str, ...], ...] = ()) -> Found:
    errors = frozenset(k for k in kinds if ds.KINDS[k] != "info")
    return Found(kinds=frozenset(kinds), error_kinds=errors, chains=chains)


def test_clean_verdict_matches_only_without_errors() -> None:
    v = Verdict(clean=True)
    assert v.match(found()) == (True, "")
    assert v.match(found("user-incoherence")) == (True, "")  # info is allowed unless asserted
    assert v.match(stray_fault()) == (True, "")  # a stray access's fault: isolation held (info)
    # A job's own access faulted: the device lost its data, a bug unless the row expects it.
    assert v.match(found("iommu-fault")) == (False, "unexpected: iommu-fault")
    assert v.match(found("deadlock")) == (False, "unexpected: deadlock")
    assert v.match(found("leak")) == (False, "unexpected: leak")  # warnings count as bugs


def test_finding_verdict_needs_every_kind_and_nothing_else() -> None:
    v = Verdict(kinds=frozenset({"dma-freed-page", "stale-mapping"}))
    assert v.match(found("dma-freed-page", "stale-mapping", "user-incoherence")) == (True, "")
    assert v.match(found("dma-freed-page")) == (False, "not found: stale-mapping")
    ok, why = v.match(found("dma-freed-page", "stale-mapping", "deadlock"))
    assert not ok and why == "unexpected: deadlock"


def stray_fault() -> Found:
    return Found(kinds=frozenset({"iommu-fault"}), error_kinds=frozenset())


def test_asserted_info_kinds() -> None:
    v = Verdict(clean=True, kinds=frozenset({"iommu-fault"}))
    assert v.match(stray_fault()) == (True, "")
    assert v.match(found()) == (False, "not found: iommu-fault")
    # The row expects faults: its jobs' faults (errors) are expected too (catalog R2).
    assert v.match(found("iommu-fault")) == (True, "")
    assert v.error_kinds == frozenset({"iommu-fault"})
    # A row whose jobs are meant to fault expects the error.
    f = Verdict(kinds=frozenset({"iommu-fault"}))
    assert f.match(found("iommu-fault")) == (True, "")
    assert f.error_kinds == frozenset({"iommu-fault"})
    w = Verdict(kinds=frozenset({"dma-foreign-page"}), absent=frozenset({"user-incoherence"}))
    assert w.match(found("dma-foreign-page", "user-incoherence")) == (False, "must not appear: user-incoherence")


def test_chain_is_matched_up_to_rotation() -> None:
    v = Verdict(kinds=frozenset({"circular-locking"}), chain=("fs_reclaim", "reservation_ww_class_mutex"))
    assert v.match(found("circular-locking", chains=(("reservation_ww_class_mutex", "fs_reclaim"),)))[0]
    ok, why = v.match(found("circular-locking", chains=(("A", "B"),)))
    assert not ok
    assert why == "no circular-locking report with chain fs_reclaim -> reservation_ww_class_mutex (found: A -> B)"
    assert v.describe() == "circular-locking [fs_reclaim -> reservation_ww_class_mutex -> fs_reclaim]"


def test_same_cycle() -> None:
    assert same_cycle(["a", "b", "c"], ["c", "a", "b"])
    assert same_cycle(["a", "b", "a"], ["b", "a"])
    assert not same_cycle(["a", "b", "c"], ["a", "c", "b"])
    assert not same_cycle(["a"], ["a", "b"])


def test_verdict_validation() -> None:
    with pytest.raises(ds.UsageError, match="unknown finding kind 'nope'"):
        Verdict(kinds=frozenset({"nope"}))
    with pytest.raises(ds.UsageError, match="only require info kinds"):
        Verdict(clean=True, kinds=frozenset({"deadlock"}))
    with pytest.raises(ds.UsageError, match="either clean=True or names"):
        Verdict()
    with pytest.raises(ds.UsageError, match="only expected together with kind 'circular-locking'"):
        Verdict(kinds=frozenset({"deadlock"}), chain=("a", "b"))
    assert Verdict.of("clean") == Verdict(clean=True)
    assert Verdict.of({"kinds": ["deadlock"]}) == Verdict(kinds=frozenset({"deadlock"}))
    with pytest.raises(ds.UsageError, match="unknown verdict field"):
        Verdict.of({"kind": "deadlock"})


def test_every_claim_is_listed_and_pending_ones_say_what_they_need() -> None:
    cat = discover()
    claims = cat.claims
    for n in range(1, 19):
        assert f"C{n}" in claims
    assert claims.index("C2") < claims.index("C10") < claims.index("C18")  # numeric order
    for r in cat:
        if not r.modelled:
            assert r.expected is None
            assert r.status.startswith("not yet modelled (needs: ")
            assert r.needs


def test_discovery_is_deterministic() -> None:
    assert [r.key for r in discover()] == [r.key for r in discover()]


def test_basics_rows_are_registered() -> None:
    cat = discover()
    row = cat.get("B1/abba-mutexes")
    assert row.modelled and row.expected == Verdict(kinds=frozenset({"deadlock"}))
    assert row.origin == "dmabufsim.scenarios.basics_locking:abba_mutexes"
    assert row.kernel_options == {"lockdep": False}
    assert cat.get("B2/trylock-under-spinlock").expected == Verdict(clean=True)


def test_select_and_resolve() -> None:
    cat = discover()
    assert [r.key for r in cat.select(["b1"])] == ["B1/abba-mutexes", "B1/abba-mutexes-lockdep", "B1/ordered-mutexes"]
    assert [r.key for r in cat.select(["B2/trylock-under-spinlock"])] == ["B2/trylock-under-spinlock"]
    with pytest.raises(ds.UsageError, match=r"unknown claim 'C99'; known claims: C1, C2"):
        cat.select(["C99"])
    assert cat.resolve("B3").key == "B3/lock-held-at-exit"
    with pytest.raises(ds.UsageError, match="several designs"):
        cat.resolve("B1")


def _scenario(k: ds.Kernel) -> None:
    """Does nothing."""


def test_module_convention_dict_entries() -> None:
    mod = types.ModuleType("fake_c99")
    mod.scenario = _scenario  # type: ignore[attr-defined]
    mod.CLAIM = {"id": "C18", "design": "fake", "expected": "clean", "budget": 3}  # type: ignore[attr-defined]
    (row,) = rows_of_module(mod)
    assert row.key == "C18/fake" and row.scenario is _scenario and row.budget == 3
    assert row.title == {c[0]: c[2] for c in cat_mod.CLAIM_INDEX}["C18"]
    assert row.doc == "Does nothing."
    mod.CLAIM = {"id": "C18", "design": "fake", "expected": "clean", "budgett": 3}  # type: ignore[attr-defined]
    with pytest.raises(ds.UsageError, match=r"unknown catalog field\(s\) \['budgett'\]"):
        rows_of_module(mod)
    mod.CLAIM = {"id": "C18", "design": "fake"}  # type: ignore[attr-defined]
    with pytest.raises(ds.UsageError, match="no expected verdict"):
        rows_of_module(mod)


def test_a_modelled_claim_replaces_its_pending_row() -> None:
    row = ClaimScenario(claim="C18", title="t", design="d", scenario=_scenario, expected=Verdict(clean=True))
    cat = cat_mod.Catalog([row])
    assert [r.key for r in cat.select(["C18"])] == ["C18/d"]
    assert [r.key for r in cat.select(["C17"])] == ["C17/-"]


def test_a_module_that_fails_to_load_is_one_broken_row(monkeypatch: pytest.MonkeyPatch) -> None:
    from dmabufsim.scenarios import check

    names = cat_mod._catalog_module_names()
    monkeypatch.setattr(cat_mod, "_catalog_module_names", lambda: [*names, "c97_missing_module"])
    cat = discover()
    (row,) = [r for r in cat if r.broken]
    assert row.key == "C97/<c97_missing_module>"
    assert row.status.startswith("broken: cannot load c97_missing_module: ModuleNotFoundError: ")
    assert cat.get("B3/lock-held-at-exit").modelled  # the rest of the catalog still loads
    res = check([row, cat.get("B3/lock-held-at-exit")], jobs=1)
    assert [r.status for r in res.rows] == ["error", "match"] and not res.ok


def test_a_row_declared_twice_is_broken(monkeypatch: pytest.MonkeyPatch) -> None:
    names = cat_mod._catalog_module_names()
    monkeypatch.setattr(cat_mod, "_catalog_module_names", lambda: [*names, "basics_locking"])
    (broken,) = [r for r in discover() if r.broken]
    assert broken.key == "basics_locking/<basics_locking>"
    assert broken.status.startswith(
        "broken: rows declared twice: B1/abba-mutexes (also in basics_locking), B1/abba-mutexes-lockdep (also in "
    )


def test_same_as_rows_share_the_experiment() -> None:
    from dmabufsim.scenarios import check

    target = discover().get("B3/lock-held-at-exit")
    alias = ClaimScenario(claim="M9", title="t", design="leak-alias", same_as="B3/lock-held-at-exit")
    missing = ClaimScenario(claim="M8", title="t", design="nothing", same_as="B9/none")
    rows = cat_mod._resolve_same_as([target, alias, missing])
    assert rows[1].scenario is target.scenario and rows[1].expected == target.expected
    assert rows[1].status == "modelled (the experiment of B3/lock-held-at-exit)"
    assert rows[2].broken == "same_as B9/none: no such modelled row"
    res = check(rows, jobs=1)
    a, b, c = res.rows
    assert (a.status, b.status, c.status) == ("match", "match", "error")
    assert b.row.key == "M9/leak-alias" and b.found_text == a.found_text and b.elapsed == a.elapsed
    alone = check([rows[1]], jobs=1).rows[0]  # without its target selected it runs itself
    assert alone.status == "match" and alone.found == a.found


def test_modern_rows_name_their_experiments() -> None:
    cat = discover()
    for row in cat:
        if row.same_as and not row.broken:
            target = cat.get(row.same_as)
            assert row.scenario is target.scenario and row.expected == target.expected


def test_only_chain_refuses_a_second_cycle() -> None:
    """C6 says exactly which cycles remain: an extra cycle fails the verdict."""
    from dmabufsim.scenarios.catalog import Found, Verdict

    v = Verdict(kinds=frozenset({"circular-locking"}), chain=("a", "b"), only_chain=True)
    one = Found(kinds=frozenset({"circular-locking"}), error_kinds=frozenset({"circular-locking"}),
                chains=(("b", "a"),))
    two = Found(kinds=one.kinds, error_kinds=one.error_kinds, chains=(("a", "b"), ("a", "c")))
    assert v.match(one) == (True, "")
    ok, why = v.match(two)
    assert not ok and why == "other cycles reported: a -> c"
    assert Verdict.of({"kinds": ["circular-locking"], "chain": ["a", "b"], "only_chain": True}) == v


def test_rows_name_their_year_and_source() -> None:
    """R9: a design's own year/source wins over its claim's; history claims sort after B."""
    mod = types.ModuleType("fake_h02")
    mod.scenario = _scenario  # type: ignore[attr-defined]
    mod.CLAIMS = [  # type: ignore[attr-defined]
        {"id": "H2", "design": "default", "expected": "clean"},
        {"id": "H2", "design": "own", "expected": "clean", "year": 2023, "source": "Message-ID x@y"},
    ]
    default, own = rows_of_module(mod)
    assert (default.year, default.source) == (2019, "d3c6dd1fb30d and its 2023 fix")
    assert (own.year, own.source, own.provenance) == (2023, "Message-ID x@y", "2023, Message-ID x@y")
    assert own.to_json()["year"] == 2023 and own.to_json()["source"] == "Message-ID x@y"
    mod.CLAIMS = [{"id": "H2", "design": "bad", "expected": "clean", "year": "2019"}]  # type: ignore[attr-defined]
    with pytest.raises(ds.UsageError, match="year must be an int, got '2019'"):
        rows_of_module(mod)
    cat = cat_mod.Catalog([default, own])
    claims = cat.claims
    assert claims.index("M4") < claims.index("H1") < claims.index("H2") < claims.index("H10")
    pending = cat.get("H17/-")
    assert not pending.modelled and pending.provenance == "2010, 51311d0a5c69"
    assert cat.get("C4/-").provenance.startswith("2018, ")


def test_catalog_markdown_has_a_kernel_history_section() -> None:
    from dmabufsim.report.commands import catalog_markdown

    md = catalog_markdown(cat_mod.Catalog([]))
    head = md.index("# From kernel history")
    assert md.index("## C18:") < head < md.index("## H1:") < md.index("## H17:")
    assert "Source: 2010, 51311d0a5c69." in md
