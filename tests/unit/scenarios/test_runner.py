"""Settling rows: results, counterexample tokens, determinism over jobs (runner R1-R3)."""

from __future__ import annotations

import dataclasses

import dmabufsim as ds
from dmabufsim.scenarios import ClaimScenario, basics_locking, check, discover
from dmabufsim.scenarios.runner import split


def test_split_is_deterministic_and_covers_the_budget() -> None:
    assert split(10, 2) == [(0, 3), (3, 6), (6, 9), (9, 10)]
    assert split(3, 8) == [(0, 1), (1, 2), (2, 3)]
    for budget in (1, 7, 100):
        for jobs in (1, 2, 3):
            chunks = split(budget, jobs)
            assert [i for s, e in chunks for i in range(s, e)] == list(range(budget))


def test_basics_rows_match_and_tokens_replay_the_counterexample() -> None:
    rows = discover().select(["B1", "B2", "B3"])
    res = check(rows, jobs=1)
    assert [(r.row.key, r.status) for r in res.rows] == [
        ("B1/abba-mutexes", "match"),
        ("B1/abba-mutexes-lockdep", "match"),
        ("B1/ordered-mutexes", "match"),
        ("B2/mutex-under-spinlock", "match"),
        ("B2/trylock-under-spinlock", "match"),
        ("B3/lock-held-at-exit", "match"),
    ]
    assert res.ok
    by = {r.row.key: r for r in res.rows}
    abba = by["B1/abba-mutexes"]
    assert abba.found is not None and abba.found.kinds == {"deadlock"}
    # The search stops once every expected bug was seen, and says so.
    assert abba.found_text == (
        f"deadlock ({abba.executions} executions, portfolio; stopped: every expected bug found)"
    )
    assert abba.executions < 100
    # The (shrunk) token rebuilds the deadlock with the row's kernel options.
    ex = ds.Kernel(replay=abba.token, lockdep=False).run(basics_locking.abba_mutexes)
    assert ex.kinds == ["deadlock"]
    assert ex.findings[0].details["holding"] == {"t1": ["lock_A"], "t2": ["lock_B"]}
    clean = by["B1/ordered-mutexes"]
    assert clean.token == "" and clean.first is None
    assert clean.exhaustive
    assert clean.found_text == "clean (2 executions, odpor; odpor exhausted (unbounded))"


def test_seeds_strategy_execution_i_is_seed_i() -> None:
    row = dataclasses.replace(discover().get("B1/abba-mutexes"), strategy="seeds")
    (r,) = check([row], jobs=1).rows
    assert r.status == "match" and not r.exhaustive
    assert r.found_text == f"deadlock (first: #{r.first_execution}) (100 executions, seeds; not exhaustive)"
    assert ds.Kernel(seed=r.first_execution, lockdep=False).run(basics_locking.abba_mutexes).token == r.token
    clean = dataclasses.replace(discover().get("B1/ordered-mutexes"), strategy="seeds", budget=100)
    assert check([clean], jobs=1).rows[0].found_text == "clean (100 executions, seeds; not exhaustive)"


def test_a_row_may_name_optimal_dpor_for_an_unbounded_verdict() -> None:
    # B1/ordered-mutexes names odpor itself (above); a bug row explored by it matches too.
    bug = dataclasses.replace(discover().get("B1/abba-mutexes"), strategy="odpor", budget=100)
    (r,) = check([bug], jobs=1).rows
    assert r.status == "match" and r.found is not None and r.found.kinds == {"deadlock"}


def test_result_does_not_depend_on_jobs() -> None:
    rows = discover().select(["B1", "B2"])
    seeds = [dataclasses.replace(r, strategy="seeds") for r in rows]
    for rs in (rows, seeds):
        one = check(rs, jobs=1, budget=12).to_json()
        two = check(rs, jobs=2, budget=12).to_json()
        for doc in (one, two):
            for r in doc["rows"]:
                assert r.pop("elapsed") >= 0  # wall clock: the only field allowed to differ
        assert one == two


def test_a_broken_design_flips_the_verdict() -> None:
    # The "ABBA" row, with its scenario replaced by the ordered design: no deadlock to find.
    row = discover().get("B1/abba-mutexes")
    broken = dataclasses.replace(row, scenario=basics_locking.ordered_mutexes)
    (r,) = check([broken], jobs=1, budget=30).rows
    assert r.status == "mismatch" and r.why == "not found: deadlock"
    # And the fixed row whose scenario deadlocks: an unexpected error with its token.
    fixed = discover().get("B1/ordered-mutexes")
    deadlocking = dataclasses.replace(fixed, scenario=basics_locking.abba_mutexes, kernel_options={"lockdep": False})
    (r2,) = check([deadlocking], jobs=1, budget=30).rows
    assert r2.status == "mismatch" and r2.why == "unexpected: deadlock"
    assert r2.first is not None and r2.first["kind"] == "deadlock" and r2.token == r2.first["token"]
    assert not check([broken], jobs=1, budget=5).ok


def test_pending_rows_are_never_a_pass() -> None:
    # A claim with no scenario yet (the catalog grows: fall back to a synthetic one).
    cat = discover()
    pending = [r for r in cat if not r.modelled][:1] or [
        ClaimScenario(claim="C99", title="t", design="-", needs=("room",))
    ]
    rows = [*pending, cat.get("B3/lock-held-at-exit")]
    res = check(rows, jobs=1)
    assert [r.status for r in res.rows] == ["pending", "match"]
    assert res.rows[0].why.startswith("not yet modelled (needs: ")
    assert res.ok and res.pending == [res.rows[0]]
    strict = check(rows, jobs=1, strict=True)
    assert not strict.ok
    assert strict.to_json()["counts"] == {"match": 1, "pending": 1}


def test_skip_slow_and_simulator_errors() -> None:
    row = discover().get("B3/lock-held-at-exit")
    slow = dataclasses.replace(row, slow=True)
    assert check([slow], jobs=1, skip_slow=True).rows[0].status == "skipped"
    bad = dataclasses.replace(row, kernel_options={"no_such_option": 1})
    (r,) = check([bad], jobs=1).rows
    assert r.status == "error" and "unknown Kernel option(s) ['no_such_option']" in r.why
    assert not check([bad], jobs=1).ok


def test_shrink_gives_a_schedule_no_longer_than_the_original() -> None:
    from dmabufsim.kernel.token import decode

    row = discover().get("B1/abba-mutexes")
    plain = check([row], jobs=1).rows[0]
    shrunk = check([row], jobs=1, shrink=True).rows[0]
    assert plain.status == shrunk.status == "match"
    assert len(decode(shrunk.token)) <= len(decode(plain.token))
    assert ds.Kernel(replay=shrunk.token, lockdep=False).run(basics_locking.abba_mutexes).kinds == ["deadlock"]


def test_a_row_stopped_at_its_expected_bug_is_not_called_exhaustive() -> None:
    """JSON honesty: 'stopped: every expected bug found' is said, but exhaustive stays false."""
    from dmabufsim.scenarios.catalog import discover
    from dmabufsim.scenarios.runner import check

    rows = [r for r in discover() if r.key == "B1/abba-mutexes"]
    [res] = check(rows, jobs=1).rows
    data = res.to_json()
    assert data["match"] is True
    assert "stopped: every expected bug found" in data["found_text"]
    assert data["exhaustive"] is False
    assert data["steps"] is None
