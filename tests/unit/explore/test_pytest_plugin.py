"""The pytest plugin: one-line assertions on findings and verdicts; inconclusive never passes."""

from __future__ import annotations

import pathlib
import textwrap
from collections.abc import Callable

import pytest

import dmabufsim as ds
from dmabufsim.explore.pytest_plugin import Explored

from .scenarios import NO_LOCKDEP, abba, clean

pytest_plugins = ["pytester"]


def test_assert_finds_in_one_line(explore_scenario: Callable[..., Explored]) -> None:
    f = explore_scenario(abba, strategy="dpor", budget=500, kernel_options=NO_LOCKDEP).assert_finds("deadlock")
    assert f.finding.details["blocked"] == {"t1": "mutex_lock", "t2": "mutex_lock"}


def test_assert_clean_passes_only_when_exhausted(explore_scenario: Callable[..., Explored]) -> None:
    explore_scenario(clean, strategy="dpor", budget=5000, kernel_options=NO_LOCKDEP).assert_clean()
    with pytest.raises(AssertionError, match="not a pass: inconclusive"):
        explore_scenario(clean, strategy="random", budget=10, kernel_options=NO_LOCKDEP).assert_clean()


def test_assert_proved_demands_every_schedule(explore_scenario: Callable[..., Explored]) -> None:
    explore_scenario(clean, strategy="odpor", budget=1000, kernel_options=NO_LOCKDEP).assert_proved()
    bounded = explore_scenario(clean, strategy="dpor", preemption_bound=1, kernel_options=NO_LOCKDEP)
    bounded.assert_clean()  # exhausted within its bound ...
    with pytest.raises(AssertionError, match=r"not proved: exhausted up to 1 preemption \(dpor, 78 executions\)"):
        bounded.assert_proved()  # ... but not every schedule
    with pytest.raises(AssertionError, match="not proved: "):
        explore_scenario(abba, strategy="dpor", budget=500, kernel_options=NO_LOCKDEP).assert_proved()


def test_assert_clean_fails_on_a_finding_with_the_token(explore_scenario: Callable[..., Explored]) -> None:
    with pytest.raises(AssertionError, match="dmabufsim replay dbs2"):
        explore_scenario(abba, strategy="dpor", budget=500, kernel_options=NO_LOCKDEP).assert_clean()


def test_assert_finds_fails_with_the_report(explore_scenario: Callable[..., Explored]) -> None:
    with pytest.raises(AssertionError, match="no deadlock finding"):
        explore_scenario(clean, strategy="random", budget=5, kernel_options=NO_LOCKDEP).assert_finds("deadlock")


def _docstring_example() -> str:
    """The test functions of the plugin's module docstring, as written there."""
    from dmabufsim.explore import pytest_plugin

    doc = pytest_plugin.__doc__ or ""
    block = doc.split("Then::\n", 1)[1].split("\nRules:", 1)[0]
    return textwrap.dedent(block)


def test_the_documented_example_runs_as_written(pytester: pytest.Pytester) -> None:
    """The docstring's ``assert_finds("deadlock")`` on ABBA, with lockdep on (the default): the search
    stops at the circular-locking report, whose guided confirmation is the deadlock (report R3)."""
    example = _docstring_example()
    assert 'explore_scenario(abba, strategy="dpor", budget=500).assert_finds("deadlock")' in example
    abba_src = (pathlib.Path(__file__).resolve().parents[3] / "examples" / "abba.py").read_text()
    pytester.makepyfile(
        abba_src.replace("def scenario(", "def abba(")
        + textwrap.dedent(
            """
            def design(k):
                m = ds.Mutex("m")
                def w():
                    with m:
                        k.point("x", 999, True)
                k.spawn(w, name="a")
                k.spawn(w, name="b")
            """
        )
        + example
    )
    res = pytester.runpytest("-p", "no:cacheprovider")
    res.assert_outcomes(passed=2)


def test_a_confirmed_deadlock_is_found_with_its_own_token(explore_scenario: Callable[..., Explored]) -> None:
    rep = explore_scenario(abba, strategy="dpor", budget=500)
    assert rep.kinds() == ["circular-locking"]  # the search stopped at lockdep's report
    f = rep.assert_finds("deadlock")
    conf = rep.findings[0].confirmation
    assert conf is not None and conf.confirmed
    assert (f.kind, f.token, f.strategy) == ("deadlock", conf.token, "lockdep-guided(A -> B)")
    assert f.finding.details["blocked"] == {"t1": "mutex_lock", "t2": "mutex_lock"}
    assert ds.Kernel(replay=f.token).run(abba).outcome == "deadlock"
    assert rep.verdict == "finding" and rep.kinds() == ["circular-locking"]  # the verdict is unchanged
    with pytest.raises(AssertionError, match="no deadlock finding"):
        explore_scenario(abba, strategy="dpor", budget=500, confirm_cycles=False).assert_finds("deadlock")


def test_plugin_in_a_project(pytester: pytest.Pytester) -> None:
    # No conftest: installing dmabufsim registered the plugin (pytest11 entry point).
    pytester.makepyfile(
        """
        import dmabufsim as ds

        def clean(k):
            m = ds.Mutex("m")
            def w():
                with m:
                    k.point("x", 999, True)
            k.spawn(w, name="a")
            k.spawn(w, name="b")

        def test_inconclusive_fails(explore_scenario):
            explore_scenario(clean, strategy="random", kernel_options={"lockdep": False}).assert_clean()
        """
    )
    res = pytester.runpytest("--dmabufsim-budget=7", "-p", "no:cacheprovider")
    res.assert_outcomes(failed=1)
    res.stdout.fnmatch_lines(["*not a pass: inconclusive*random, 7 executions*"])


def test_plugin_is_loaded_from_its_entry_point_in_a_fresh_process(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        def test_uses_the_fixture(explore_scenario):
            assert callable(explore_scenario)
        """
    )
    res = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    res.assert_outcomes(passed=1)
    # The plugin is named by its entry point: it can be switched off like any installed plugin.
    off = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:dmabufsim")
    off.assert_outcomes(errors=1)
    off.stdout.fnmatch_lines(["*fixture 'explore_scenario' not found*"])
