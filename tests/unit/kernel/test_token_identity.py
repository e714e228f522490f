"""Replay tokens carry their scenario's identity and length (kernel.token R1-R4, kernel.identity R1-R4)."""

from __future__ import annotations

import functools
import pathlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

import dmabufsim as ds
from dmabufsim.kernel.identity import scenario_id
from dmabufsim.kernel.token import encode, parse
from dmabufsim.scenarios.catalog import load_file_module


@given(
    choices=st.lists(st.integers(min_value=0, max_value=1 << 40), max_size=200),
    extra=st.integers(min_value=0, max_value=1000),
    sid=st.text(alphabet="0123456789abcdef", min_size=10, max_size=10),
)
def test_tokens_round_trip(choices: list[int], extra: int, sid: str) -> None:
    tok = parse(encode(choices, sid, len(choices) + extra))
    assert (tok.version, tok.choices, tok.scenario, tok.length) == ("dbs2", choices, sid, len(choices) + extra)


@given(choices=st.lists(st.integers(min_value=0, max_value=300), min_size=1, max_size=200), data=st.data())
def test_a_cut_token_is_never_read_as_a_shorter_schedule(choices: list[int], data: st.DataObject) -> None:
    """R4: any prefix of a token is refused (or, cut inside its header, malformed) -- never a prefix schedule."""
    tok = encode(choices, "0123456789")
    cut = data.draw(st.integers(min_value=1, max_value=len(tok) - 1))
    try:
        got = parse(tok[:cut])
    except ds.ReplayError:
        return
    assert got.choices == choices  # only a cut in the base64 padding-free tail that loses no byte


def test_a_token_longer_than_its_length_is_malformed() -> None:
    with pytest.raises(ds.ReplayError, match=r"3 choices, but it says 2$"):
        parse(encode([1, 2, 3], "0123456789", 2))


def _body(k: ds.Kernel, n: int = 0) -> None:
    pass


def test_identity_is_the_name_and_the_module_source() -> None:
    a = scenario_id(_body)
    assert a.name == "_body" and a.source and len(a.short) == 10
    assert scenario_id(functools.partial(_body, n=3)).name == "_body(n=3)"
    assert scenario_id(functools.partial(_body, n=3)).code == a.code
    assert scenario_id(functools.partial(_body, n=3)).short[:4] != a.short[:4]


def _make(n: int) -> object:
    def scenario(k: ds.Kernel) -> None:
        for _ in range(n):
            k.point("x", 1, True)

    return scenario


def test_a_closure_is_named_with_its_plain_cells() -> None:
    assert scenario_id(_make(2)).name == "_make.<locals>.scenario[2]"  # type: ignore[arg-type]
    assert scenario_id(_make(2)).short != scenario_id(_make(3)).short  # type: ignore[arg-type]


def test_a_file_scenario_has_the_same_identity_wherever_it_is(tmp_path: pathlib.Path) -> None:
    src = "def scenario(k):\n    pass\n"
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "sc.py").write_text(src)
    (tmp_path / "b" / "other.py").write_text(src)
    (tmp_path / "b" / "edited.py").write_text(src + "# edited\n")
    one = scenario_id(load_file_module(str(tmp_path / "a" / "sc.py"), prefix="_t1_").scenario)
    two = scenario_id(load_file_module(str(tmp_path / "b" / "other.py"), prefix="_t2_").scenario)
    three = scenario_id(load_file_module(str(tmp_path / "b" / "edited.py"), prefix="_t3_").scenario)
    assert one.short == two.short
    assert three.short[:4] == one.short[:4] and three.code != one.code


def test_source_less_scenarios_say_so() -> None:
    ns: dict[str, object] = {}
    exec("def gen(k):\n    pass\n", ns)  # a function without a source file
    sid = scenario_id(ns["gen"])  # type: ignore[arg-type]
    assert sid.name == "gen" and not sid.source
    ex = ds.Kernel().run(ns["gen"])  # type: ignore[arg-type]
    assert ds.Kernel(replay=ex.token).run(ns["gen"]).trace_digest == ex.trace_digest  # type: ignore[arg-type]
