"""``replay --dot`` and ``replay --trace``: what the drawings show of one execution."""

from __future__ import annotations

import json
import pathlib
import re

import pytest

from dmabufsim.cli import main

ABBA = str(pathlib.Path(__file__).resolve().parents[2] / "examples" / "abba.py") + ":scenario"
ABBA_TOKEN = "dbs1.eJxjYGBkZGJiBAAAGwAI"
C5_TOKEN = "dbs1.eJxjYGRkYgBiIACTAACtABc"
#: The classes dma_resv_lockdep() primes at boot.
PRIMED = {"mmap_lock", "reservation_ww_class_acquire", "reservation_ww_class_mutex", "fs_reclaim",
          "mmu_notifier_invalidate_range_start", "i_mmap_rwsem", "dma_fence_map"}


def _nodes(dot: str) -> list[str]:
    return re.findall(r'^  "([^"]+)" \[label=', dot, flags=re.M)


def _dot(tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    out = tmp_path / "g.dot"
    assert main(["replay", *argv, "--dot", str(out)]) == 1
    capsys.readouterr()
    return out.read_text()


def test_abba_dot_draws_only_its_two_locks_and_explains_the_labels(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dot = _dot(tmp_path, capsys, ABBA_TOKEN, ABBA)
    assert _nodes(dot) == ["A", "B"]
    assert '  "A" -> "B" [label="t1", tooltip="worker+16 (abba.py:16)", color=red, penwidth=2];' in dot
    assert '  "B" -> "A" [color=red, style=dashed, label="reported"];' in dot
    (label,) = [ln for ln in dot.splitlines() if ln.startswith("  label=")]
    assert label.endswith(
        "cycle: A -> B -> A\\nA -> B: B was taken while A was held; label: the thread that first did so; "
        "red: the reported cycle (dashed: the dependency whose acquisition closed it, reported instead of "
        'recorded)";'
    )


def test_c5_dot_leaves_out_the_classes_only_primed_at_boot(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dot = _dot(tmp_path, capsys, C5_TOKEN, "C5/shrinker-blocking-lock")
    assert _nodes(dot) == ["reservation_ww_class_mutex", "fs_reclaim", "mmu_notifier_invalidate_range_start"]
    assert ('  "reservation_ww_class_mutex" -> "fs_reclaim" [label="boot", '
            'tooltip="dma_resv_lockdep+0 (dma-resv.c:0)", color=red, penwidth=2];') in dot
    assert "(boot: taught by dma_resv_lockdep() at boot)" in dot and "dashed boxes" not in dot
    every = _dot(tmp_path, capsys, C5_TOKEN, "C5/shrinker-blocking-lock", "--dot-all-classes")
    assert set(_nodes(every)) == PRIMED
    untouched = re.findall(r'^  "([^"]+)" \[label="[^"]+", style=dashed, color=gray', every, flags=re.M)
    assert set(untouched) == PRIMED - set(_nodes(dot))
    assert "dashed boxes: classes primed at boot that this execution did not take" in every


def test_abba_trace_draws_each_blocked_attempt_as_a_wait(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "abba.json"
    assert main(["replay", ABBA_TOKEN, ABBA, "--trace", str(out)]) == 1
    capsys.readouterr()
    evs = json.loads(out.read_text())["traceEvents"]
    threads = {(e["pid"], e["tid"]): e["args"]["name"] for e in evs if e["name"] == "thread_name"}
    slices = sorted(
        (threads[(e["pid"], e["tid"])], e["cat"], e["name"])
        for e in evs if e["ph"] == "X" and e["cat"] in ("lock", "lock-wait") and e["name"].startswith(("lock ", "wait"))
    )
    assert slices == [
        ("t1/1", "lock", "lock A"), ("t1/1", "lock-wait", "wait: B"),
        ("t2/2", "lock", "lock B"), ("t2/2", "lock-wait", "wait: A"),
    ]


def test_c5_trace_holds_the_resv_once_and_both_attempts_wait(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "c5.json"
    assert main(["replay", C5_TOKEN, "C5/shrinker-blocking-lock", "--trace", str(out)]) == 1
    capsys.readouterr()
    evs = json.loads(out.read_text())["traceEvents"]
    threads = {(e["pid"], e["tid"]): e["args"]["name"] for e in evs if e["name"] == "thread_name"}
    resv = sorted(
        (threads[(e["pid"], e["tid"])], e["cat"], e["args"].get("released", e["args"].get("outcome")))
        for e in evs if e["ph"] == "X" and e["name"] in ("lock reservation_ww_class_mutex",
                                                          "wait: reservation_ww_class_mutex")
    )
    assert resv == [
        ("cs/1", "lock", "never (held when the execution ended)"),
        ("cs/1", "lock-wait", "never acquired (still waiting when the execution ended)"),
        ("other-process/2", "lock-wait", "never acquired (still waiting when the execution ended)"),
    ]
