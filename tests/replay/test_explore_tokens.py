"""Round trips of the explorer's tokens: original, shrunk and guided tokens rebuild their findings."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

import dmabufsim as ds
from dmabufsim.explore import explore, replay
from dmabufsim.kernel.identity import scenario_id
from dmabufsim.kernel.token import decode, encode, parse
from tests.unit.explore.scenarios import NO_LOCKDEP, abba, make_counter, noisy_abba, philosophers


@pytest.mark.parametrize("strategy", ["random", "pct", "dfs", "icb", "dpor"])
def test_original_token_rebuilds_the_identical_execution(strategy: str) -> None:
    rep = explore(noisy_abba(1, 2), strategy, budget=3000, kernel_options=NO_LOCKDEP, shrink_findings=False)
    (f,) = rep.findings
    assert f.replay_ok
    ex = ds.Kernel(replay=f.original_token, lockdep=False).run(noisy_abba(1, 2))
    assert ex.trace_digest == f.trace_digest
    assert ex.diverged_at is None
    assert [x.signature for x in ex.findings] == [f.signature]


@pytest.mark.parametrize("scenario", [noisy_abba(4, 6), make_counter(2, 2)])
def test_shrunk_token_reproduces_without_divergence(scenario: object) -> None:
    rep = explore(scenario, "random", budget=500, kernel_options=NO_LOCKDEP)  # type: ignore[arg-type]
    (f,) = rep.findings
    r = replay(scenario, decode(f.token), lockdep=False)  # type: ignore[arg-type]
    assert r.diverged_at is None
    assert f.signature in [x.signature for x in r.execution.findings]
    assert r.execution.preemptions == f.preemptions <= f.original_preemptions


def test_guided_token_round_trip_in_another_process() -> None:
    rep = explore(philosophers(8), "random", budget=5)
    c = rep.findings[0].confirmation
    assert c is not None and c.confirmed
    here = ds.Kernel(replay=c.token).run(philosophers(8))
    code = textwrap.dedent(
        f"""
        import dmabufsim as ds
        from tests.unit.explore.scenarios import philosophers
        ex = ds.Kernel(replay={c.token!r}).run(philosophers(8))
        print(ex.outcome, ex.trace_digest)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["deadlock", here.trace_digest]


def test_token_encoding_round_trip() -> None:
    rep = explore(abba, "dpor", budget=100, kernel_options=NO_LOCKDEP)
    f = rep.findings[0]
    tok = parse(f.original_token)
    assert encode(tok.choices, tok.scenario, tok.length) == f.original_token
    assert f.token.startswith(f"dbs2.{scenario_id(abba).short}.")
