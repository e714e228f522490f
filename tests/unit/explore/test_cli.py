"""``dmabufsim explore``: exit codes per verdict, JSON, summary table."""

from __future__ import annotations

import json
from typing import Any

from dmabufsim.cli import main
from tests.helpers import ABBA_AND_CLEAN, scenario_file

SCENARIO = ABBA_AND_CLEAN


def _file(tmp_path: Any) -> str:
    return scenario_file(tmp_path)


def test_explore_finding_exits_1_with_token_and_table(tmp_path: Any, capsys: Any) -> None:
    rc = main(["explore", f"{_file(tmp_path)}:abba", "--strategy", "dpor", "--budget", "500"])
    out = capsys.readouterr().out
    assert rc == 1
    assert "dmabufsim replay dbs2." in out
    assert "verdict: finding: 1 distinct (" in out
    assert "exec/s" in out


def test_explore_expected_finding_exits_0(tmp_path: Any, capsys: Any) -> None:
    rc = main(["explore", f"{_file(tmp_path)}:abba", "--strategy", "random", "--expect", "deadlock",
               "--expect", "circular-locking"])
    assert rc == 0


def test_explore_exhausted_exits_0_and_inconclusive_exits_3(tmp_path: Any, capsys: Any) -> None:
    f = _file(tmp_path)
    assert main(["explore", f"{f}:clean", "--strategy", "dpor", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["verdict"] == "exhausted" and data["bound"] == "unbounded"
    assert main(["explore", f"{f}:clean", "--strategy", "random", "--budget", "20", "--json"]) == 3
    data = json.loads(capsys.readouterr().out)
    assert data["verdict"] == "inconclusive" and data["executions"] == 20 and data["ok"] is False


def test_explore_jobs_two(tmp_path: Any, capsys: Any) -> None:
    rc = main(["explore", f"{_file(tmp_path)}:abba", "--strategy", "random", "--budget", "50", "--jobs", "2",
               "--all", "--json"])
    data = json.loads(capsys.readouterr().out)
    assert rc == 1
    assert data["jobs"] == 2 and data["executions"] == 50
    assert "deadlock" in {f["kind"] for f in data["findings"]}


def test_explore_bad_input_is_one_line_exit_2(tmp_path: Any, capsys: Any) -> None:
    assert main(["explore", f"{_file(tmp_path)}:nope"]) == 2
    assert "has no function 'nope'" in capsys.readouterr().err


def test_explore_audit_mode(tmp_path: Any, capsys: Any) -> None:
    rc = main(["explore", f"{_file(tmp_path)}:abba", "--audit", "--budget", "20000"])
    out = capsys.readouterr().out
    assert rc == 0
    assert out.startswith("audit ok: 2 terminal states; dfs ")


SLOW_SCENARIO = '''
import os
import dmabufsim as ds

def _w(a, b):
    with a, b:
        pass

def abba(k):
    marker = os.environ["EXPLORE_MARKER"]
    if not os.path.exists(marker):
        open(marker, "w").close()
    a, b = ds.Mutex("A"), ds.Mutex("B")
    k.spawn(_w, a, b, name="t1")
    k.spawn(_w, b, a, name="t2")
'''


def test_ctrl_c_with_two_jobs_prints_what_was_found(tmp_path: Any) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    p = tmp_path / "slow.py"
    p.write_text(SLOW_SCENARIO)
    marker = tmp_path / "started"
    env = {**os.environ, "EXPLORE_MARKER": str(marker)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "dmabufsim.cli", "explore", f"{p}:abba", "--strategy", "random", "--budget",
         "100000000", "--jobs", "2", "--all", "--json", "--no-shrink"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, start_new_session=True,
    )
    try:
        for _ in range(600):  # wait (up to a minute) until the jobs are exploring; no timing is asserted
            if marker.exists():
                break
            time.sleep(0.1)
        time.sleep(0.5)
        os.killpg(proc.pid, signal.SIGINT)
        out, _err = proc.communicate(timeout=60)
    finally:  # never leave an explorer with a huge budget running behind a failed test
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
    data = json.loads(out)
    assert data["reason"] == "interrupted"
    assert data["verdict"] == "finding"
    assert "deadlock" in {f["kind"] for f in data["findings"]}
    assert all(f["kind"] != "exception" for f in data["findings"])
    assert proc.returncode == 130  # interrupted by SIGINT: 128 + 2, whatever was found (cli.main)
