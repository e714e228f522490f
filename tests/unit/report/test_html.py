"""The HTML report: DOM structure of the pages of recorded executions (html R1-R6) and the --html options."""

from __future__ import annotations

import itertools
import json
import pathlib
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import dmabufsim as ds
from dmabufsim.cli import main
from dmabufsim.mm.page import contents_oid
from dmabufsim.report import html as html_report
from tests.html_cases import Dom, counterexample, page


def test_abba_one_lane_per_thread_and_the_deadlocked_attempts_marked() -> None:
    ex, _, _ = counterexample("B1/abba-mutexes")
    dom = Dom(page("B1/abba-mutexes"))
    lanes = dom.find("lane")
    tids = [dom.attr(i, "data-tid") for i in lanes if dom.attr(i, "data-tid")]
    assert tids == [str(t.tid) for t in sorted(ex.threads, key=lambda t: t.tid)] + ["-1"]
    assert [t.name for t in ex.threads] == ["scenario", "t1", "t2"]
    # The finding's events: the last lock attempt of each blocked thread (mutex_lock of the other's lock).
    assert ex.kinds == ["deadlock"]
    events = ex.events
    assert events is not None
    hits = sorted(int(dom.attr(i, "data-i")) for i in dom.find("hit"))
    assert [(events[i].op, events[i].tid, events[i].detail) for i in hits] == [
        ("mutex_lock", 2, "lock_A"), ("mutex_lock", 1, "lock_B")]
    # Each is a wait (hatched), never a hold, on its thread's lane, with an arrow to the holder.
    waits = sorted((dom.attr(dom.elems[i][2], "data-tid"), dom.attr(i, "aria-label")) for i in dom.find("wait"))
    assert waits == [
        ("1", "waits for lock_B (never acquired (still waiting when the execution ended))"),
        ("2", "waits for lock_A (never acquired (still waiting when the execution ended))"),
    ]
    holds = sorted((dom.attr(dom.elems[i][2], "data-tid"), dom.text[i]) for i in dom.find("hold"))
    assert holds == [("1", "lock_A"), ("2", "lock_B")]
    assert len(dom.find("waitfor")) == 2
    # The finding's report and the replay command are on the page.
    assert "INFO: deadlock: no thread can run" in "".join(dom.text[i] for i in dom.find("report"))
    (cmd,) = [i for i in range(len(dom.elems)) if dom.attr(i, "id") == "cmd"]
    assert dom.text[cmd].startswith("dmabufsim replay dbs2.") and dom.text[cmd].endswith(" B1/abba-mutexes")


def test_lockdep_page_shows_the_cpu0_cpu1_table() -> None:
    dom = Dom(page("B1/abba-mutexes-lockdep"))
    (rep,) = dom.find("report")
    assert "WARNING: possible circular locking dependency detected" in dom.text[rep]
    assert re.search(r"CPU0\s+CPU1", dom.text[rep])


def test_c4_lock_then_free_the_free_precedes_the_engines_dma_on_the_page_row() -> None:
    ex, pages, _ = counterexample("C4/lock-then-free")
    events = ex.events
    assert events is not None
    (f,) = ex.by_kind("dma-freed-page")
    pfn = f.details["pfn"]
    dom = Dom(page("C4/lock-then-free"))
    (row,) = dom.find("lane", data_page=str(pfn))
    marks = [(int(dom.attr(i, "data-i")), dom.attr(i, "class").split()) for i in dom.children(row, "ev")]
    names = {t.tid: t.name for t in ex.threads}
    seen = [(events[i].op, names[events[i].tid], "hit" in cls) for i, cls in marks]
    # Freed by the freer, then read by the importer's job in flight (its only job: nothing maps the
    # frame again). (The free also drops the page's reference: a put_page event of its own on the row.)
    assert seen == [("free_page", "freer", False), ("put_page", "freer", False), ("dma", "render-gpu-gfx", True)]
    assert marks[0][0] < marks[1][0] < marks[2][0]
    assert "free" in marks[0][1] and "dma" in marks[2][1]
    # The page's own row is the pfn the allocator gave the freed page object.
    assert pages[events[marks[0][0]].obj] == pfn


def test_same_execution_same_page_byte_for_byte() -> None:
    assert page("C4/lock-then-free") == page("C4/lock-then-free")


def test_self_contained_no_network_reference() -> None:
    text = page("C4/lock-then-free")
    assert not re.search(r"""\b(src|href)\s*=\s*["']?(https?:)?//""", text)
    assert "<link" not in text and "@import" not in text and "url(http" not in text
    assert "<script src" not in text


def test_large_execution_is_summarised_with_a_visible_note() -> None:
    ex, _, _ = counterexample("C4/lock-then-free")
    events = ex.events
    assert events is not None
    total = len(events)
    dom = Dom(page("C4/lock-then-free", max_drawn=100))
    (note,) = [i for i in range(len(dom.elems)) if dom.attr(i, "id") == "summary-note"]
    assert f"This execution has {total} events; the page draws events" in dom.text[note]
    drawn = {int(dom.attr(i, "data-i")) for i in dom.find("ev")}
    assert len(drawn) == 100
    (f,) = ex.by_kind("dma-freed-page")
    assert any(events[i].step == f.step for i in drawn)  # the window holds the finding
    # What is not drawn is counted, per thread: nothing vanishes.
    counted = 0
    for i in range(len(dom.elems)):
        if dom.elems[i][0] == "tr" and dom.attr(dom.elems[i][2], "id") == "elided":
            cells = [c for c in range(len(dom.elems)) if dom.elems[c][2] == i and dom.elems[c][0] == "td"]
            if cells:
                counted += int(dom.text[cells[1]])
    assert counted == total - 100


def test_small_execution_has_no_summary_note() -> None:
    assert 'id="summary-note"' not in page("B1/abba-mutexes")


def test_render_needs_a_recorded_execution() -> None:
    ex = ds.Kernel(seed=0).run(lambda k: None)
    with pytest.raises(ds.UsageError, match="record_trace=True"):
        html_report.render(ex)


def test_cli_replay_html(tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, _, token = counterexample("B1/abba-mutexes")
    out = tmp_path / "abba.html"
    assert main(["replay", token, "B1/abba-mutexes", "--html", str(out)]) == 1
    dom = Dom(out.read_text())
    assert len([i for i in dom.find("lane") if dom.attr(i, "data-tid")]) == 4
    capsys.readouterr()


def test_cli_replay_html_unwritable(tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, _, token = counterexample("B1/abba-mutexes")
    assert main(["replay", token, "B1/abba-mutexes", "--html", str(tmp_path / "no" / "x.html")]) == 2
    err = capsys.readouterr().err
    assert err.strip().endswith("No such file or directory") and "cannot write" in err and err.count("\n") == 1


def test_cli_check_html_index_links_every_counterexample(tmp_path: pathlib.Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "check"
    assert main(["check", "B1", "--jobs", "1", "--no-progress", "--html", str(out)]) == 0
    capsys.readouterr()
    dom = Dom((out / "index.html").read_text())
    rows = [i for i in range(len(dom.elems)) if dom.elems[i][0] == "tr" and
            dom.elems[dom.elems[i][2]][0] == "tbody"]
    keys = [dom.text[next(c for c in range(len(dom.elems)) if dom.elems[c][2] == r)] for r in rows]
    assert keys == ["B1/abba-mutexes", "B1/abba-mutexes-lockdep", "B1/ordered-mutexes"]
    links = [dom.attr(i, "href") for i in range(len(dom.elems)) if dom.elems[i][0] == "a"]
    assert links == ["B1_abba-mutexes.html", "B1_abba-mutexes-lockdep.html"]
    for href in links:
        assert (out / href).is_file() and 'class="lane"' in (out / href).read_text()
    statuses = [dom.text[i] for i in dom.find("status-match")]
    assert statuses == ["✓ match"] * 3


def test_cli_explore_html_one_page_per_finding(tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "ex"
    code = main(["explore", "dmabufsim.scenarios.basics_locking:abba_mutexes", "--budget", "50", "--json",
                 "--html", str(out)])
    report = json.loads(capsys.readouterr().out)
    assert code == 1
    kinds = [f["kind"] for f in report["findings"]] + [f["kind"] for f in report["info"]]
    pages = sorted(p.name for p in out.iterdir())
    assert pages == sorted([f"{n:02d}-{k}.html" for n, k in enumerate(kinds, 1)] + ["index.html"])
    for name in pages:
        assert "</html>" in (out / name).read_text()


def _worker(k: ds.Kernel, locks: list[ds.Mutex], done: ds.Completion, n: int, first: int) -> None:
    for i in range(n):
        with locks[(first + i) % len(locks)]:
            k.msleep(0)
    done.complete()


def _lock_heavy(k: ds.Kernel) -> None:
    locks = [ds.Mutex(f"lock_{c}") for c in "ABC"]
    done = ds.Completion("done")
    for t in range(4):
        k.spawn(_worker, k, locks, done, 830, t, name=f"worker{t}")
    for _ in range(4):
        done.wait_for_completion()


def test_a_10000_event_page_stays_within_the_documented_2mb() -> None:
    ex = ds.Kernel(seed=1, record_trace=True).run(_lock_heavy)
    n = len(ex.events or [])
    assert 9_000 <= n <= html_report.MAX_DRAWN
    text = html_report.render(ex, title="lock-heavy")
    assert len(text.encode()) <= 2_000_000
    assert 'id="summary-note"' not in text  # drawn whole
    assert len(Dom(text).find("ev")) == n


def _waiter(c: ds.Completion, m: ds.Mutex) -> None:
    c.wait_for_completion()
    with m:
        pass


def _signaller(k: ds.Kernel, c: ds.Completion, m: ds.Mutex) -> None:
    with m:
        k.msleep(1)
    c.complete()


def _completion(k: ds.Kernel) -> None:
    c, m = ds.Completion("done"), ds.Mutex("state_lock")
    k.spawn(_waiter, c, m, name="waiter")
    k.spawn(_signaller, k, c, m, name="signaller")


def test_complete_draws_an_arrow_to_the_waiter() -> None:
    ex = ds.Kernel(strategy=ds.FirstStrategy(), record_trace=True).run(_completion)
    events = ex.events
    assert events is not None
    dom = Dom(html_report.render(ex))
    names = {t.tid: t.name for t in ex.threads}
    arrows = [(int(dom.attr(i, "data-a")), float(dom.attr(i, "data-b"))) for i in dom.find("sig")
              if dom.elems[i][0] == "line"]
    assert [(events[a].op, names[events[a].tid], names[events[int(b)].tid]) for a, b in arrows] == [
        ("complete", "signaller", "waiter")]
    assert arrows[0][0] < arrows[0][1]


@given(seed=st.integers(0, 10_000))
@settings(max_examples=25)
def test_every_event_once_on_its_threads_lane_and_no_two_holds_of_a_lock_overlap(seed: int) -> None:
    ex = ds.Kernel(seed=seed, record_trace=True).run(_completion)
    events = ex.events
    assert events is not None
    dom = Dom(html_report.render(ex))
    drawn: list[int] = []
    for lane in dom.find("lane"):
        tid = dom.attr(lane, "data-tid")
        if not tid:
            continue
        for i in dom.children(lane, "ev"):
            n = int(dom.attr(i, "data-i"))
            assert events[n].tid == int(tid)
            drawn.append(n)
    assert sorted(drawn) == list(range(len(events)))
    holds = sorted((float(dom.attr(i, "data-a")), float(dom.attr(i, "data-b")), dom.text.get(i, ""))
                   for i in dom.find("hold"))
    for (a0, b0, c0), (a1, _, c1) in itertools.pairwise(holds):
        assert c0 != c1 or b0 <= a1, (c0, a0, b0, a1)


def test_lockdep_finding_marks_the_acquisition_that_closes_the_cycle() -> None:
    ex, _, _ = counterexample("B1/abba-mutexes-lockdep")
    events = ex.events
    assert events is not None
    dom = Dom(page("B1/abba-mutexes-lockdep"))
    hits = [int(dom.attr(i, "data-i")) for i in dom.find("hit")]
    # t2 holds lock_B and tries lock_A: lockdep's lock_acquire runs before mutex_lock's point.
    assert [(events[i].tid, events[i].op, events[i].detail) for i in hits] == [(2, "mutex_lock", "lock_A")]


def _odd_names(k: ds.Kernel) -> None:
    m = ds.Mutex('</script><!--"&')
    k.spawn(lambda: m.lock(), name="<b>t1</b>")
    k.spawn(lambda: m.lock(), name="t2")


def test_names_cannot_break_out_of_the_page() -> None:
    ex = ds.Kernel(seed=0, record_trace=True).run(_odd_names)
    text = html_report.render(ex, title="<odd>")
    assert text.count("</script>") == 2 and "<b>t1</b>" not in text and "<!--" not in text
    (data,) = [i for i, (tag, a, _) in enumerate(Dom(text).elems) if a.get("id") == "data"]
    doc = json.loads(Dom(text).text[data])
    assert '</script><!--"&' in doc["dets"] and "<b>t1</b>" in doc["names"].values()


def _data(text: str) -> dict[str, object]:
    start = text.index('<script type="application/json" id="data">') + len('<script type="application/json" id="data">')
    return json.loads(text[start:text.index("</script>", start)])  # type: ignore[no-any-return]


def test_every_event_carries_its_call_site_each_stack_once() -> None:
    ex, _, _ = counterexample("B1/abba-mutexes")
    data = _data(page("B1/abba-mutexes"))
    events, table, sids = ex.events or [], ex.stack_table or [], ex.event_stacks or []
    st, stk = data["st"], data["stk"]
    assert isinstance(st, list) and isinstance(stk, dict)
    assert st == sids and len(st) == len(events)
    assert stk == {str(s): [str(f) for f in table[s]] for s in sorted(set(sids))}
    locks = {stk[str(st[i])][0].split("+")[0] for i, e in enumerate(events) if e.op == "mutex_lock"}
    assert locks == {"_take_in_order"}


def test_dma_frames_are_the_translations_of_each_access() -> None:
    def sc(k: ds.Kernel) -> None:
        from dmabufsim.device.device import Device
        from dmabufsim.kernel.gfp import GFP_KERNEL
        from dmabufsim.mm.page import alloc_page, init_memory

        init_memory(8)
        dev = Device("gpu0")
        pages = [alloc_page(GFP_KERNEL, "bo") for _ in range(2)]
        oids.extend(p.oid for p in pages)
        dev.map_pages(0x1000, pages)
        dev.dma_write(0x1000, "a")
        dev.dma_read(0x2000)
        dev.dma_write(0x9000, "fault")  # no PTE: reaches nothing

    oids: list[int] = []
    ex = ds.Kernel(strategy=ds.FirstStrategy(), record_trace=True).run(sc)
    events = ex.events or []
    dmas = [i for i, e in enumerate(events) if e.op == "dma"]
    got = html_report.dma_frames(events)
    assert len(dmas) == 3
    # The accesses touch the frames' contents (page R7), drawn on the frames' rows.
    assert [e.obj for e in events if e.op == "page_write"] == [contents_oid(oids[0])]
    assert [e.obj for e in events if e.op == "page_read"] == [contents_oid(oids[1])]
    assert [got.get(i) for i in dmas] == [[oids[0]], [oids[1]], None]
    assert ex.kinds[0] == "iommu-fault"


def test_sched_marks_become_event_classes_and_words() -> None:
    ex, _, _ = counterexample("C4/lock-then-free")
    text = page("C4/lock-then-free")
    dom, data = Dom(text), _data(text)
    events = ex.events or []
    marks = ex.sched_marks or []
    pre = {int(dom.attr(i, "data-i")) for i in dom.find("pre") if dom.attr(i, "data-i")}
    blk = {int(dom.attr(i, "data-i")) for i in dom.find("blk") if dom.attr(i, "data-i")}
    assert pre and blk and not pre & blk
    # Each is the thread's last event before a mark of that kind.
    for i in pre | blk:
        nxt = next(m for m in marks if m.pos > i and m.tid == events[i].tid)
        assert nxt.what == ("preempt" if i in pre else "block")
        assert not any(e.tid == events[i].tid for e in events[i + 1:nxt.pos])
    sm, ml = data["sm"], data["ml"]
    assert isinstance(sm, dict) and isinstance(ml, list)
    assert {ml[v] for k, v in sm.items() if int(k) in pre} == {"then preempted: runnable, another thread was chosen"}
    assert all(ml[v].startswith("then blocks (sleeps): ") for k, v in sm.items() if int(k) in blk)
    irq = [dom.attr(dom.elems[i][2], "data-tid") for i in dom.find("mark") if "irq" in dom.attr(i, "class")
           and dom.attr(dom.elems[i][2], "data-tid")]
    assert sorted(irq) == sorted(str(t.tid) for t in ex.threads if t.context == "hardirq")
