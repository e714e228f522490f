"""Catalog R7: a verdict expecting ``assertion`` names which of the scenario's own checks fail."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

import dmabufsim as ds
from dmabufsim.report.commands import check_table
from dmabufsim.scenarios.catalog import Found, Verdict, assert_matches, discover
from dmabufsim.scenarios.runner import check


def found(*kinds: str, asserts: tuple[str, ...] = ()) -> Found:
    errors = frozenset(k for k in kinds if ds.KINDS[k] != "info")
    return Found(kinds=frozenset(kinds), error_kinds=errors, asserts=frozenset(asserts))


def test_entry_matches_the_signature_or_its_prefix_up_to_a_colon() -> None:
    assert assert_matches("c18-torn", "c18-torn:reader0")
    assert assert_matches("c1:stale-read", "c1:stale-read")
    assert not assert_matches("c1:stale", "c1:stale-read")  # a prefix must end at a ':'
    assert not assert_matches("c18-torn", "c18-tornado")


def test_named_check_must_fail_and_no_other_check_may() -> None:
    v = Verdict(kinds=frozenset({"assertion"}), asserts=frozenset({"c1:stale-read"}))
    assert v.match(found("assertion", asserts=("c1:stale-read",))) == (True, "")
    assert v.match(found("assertion", asserts=("c1:exporter-blocked",))) == (
        False,
        "assertion not failed: c1:stale-read; unexpected assertion: c1:exporter-blocked",
    )
    assert v.match(found("assertion", asserts=("c1:stale-read", "c1:ghosts-kept"))) == (
        False,
        "unexpected assertion: c1:ghosts-kept",
    )
    assert v.match(found()) == (False, "not found: assertion")


def test_assertion_verdict_without_asserts_is_refused_and_vice_versa() -> None:
    with pytest.raises(ds.UsageError, match="asserts"):
        Verdict(kinds=frozenset({"assertion"}))
    with pytest.raises(ds.UsageError, match="asserts"):
        Verdict(kinds=frozenset({"deadlock"}), asserts=frozenset({"x"}))
    v = Verdict.of({"kinds": ["assertion"], "asserts": ["c18-torn"]})
    assert v.asserts == frozenset({"c18-torn"})
    assert v.describe() == "assertion [c18-torn]"
    assert v.to_json()["asserts"] == ["c18-torn"]


def test_every_catalog_row_expecting_assertion_names_its_checks() -> None:
    rows = [r for r in discover() if r.expected is not None and "assertion" in r.expected.kinds]
    assert {r.key: sorted(r.expected.asserts) for r in rows if r.expected is not None} == {
        "C1/importer-ignores-fences": ["c1:stale-read"],
        "C1/ghost-frees-early": ["c1:stale-read"],
        "C1/non-pipelined": ["c1:exporter-blocked"],
        "C18/no-retry": ["c18-torn"],
        "M1/evict-waits-read": ["m1:lost-write"],
        "H4/no-lock": ["set_page_dirty-unlocked"],
        "H3/no-recheck": ["h3-snapshot"],
    }


def test_check_reports_the_failed_check_and_the_table_shows_brackets_literally() -> None:
    res = check(discover().select(["C1/non-pipelined", "C10/unmap-under-resv"]), jobs=1)
    by_key = {r.row.key: r for r in res.rows}
    row = by_key["C1/non-pipelined"]
    assert row.status == "match"
    assert row.found is not None and row.found.asserts == frozenset({"c1:exporter-blocked"})
    out = io.StringIO()
    Console(file=out, width=400).print(check_table(res, 400))  # wide enough for the expected column
    text = out.getvalue()
    # Rich markup would swallow "[...]": the verdicts must print as written.
    assert "assertion [c1:exporter-blocked]" in text
    assert "circular-locking [reservation_ww_class_mutex -> fs_reclaim" in text
