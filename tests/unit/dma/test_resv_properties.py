"""Property tests: any sequence of reserve / add / replace / signal / copy keeps dma_resv's invariants.

Invariants checked after every operation (resv.py R2-R5):

* I1 (no fence lost): every fence given to ``add_fence`` that is still
  unsignalled, and whose context was not replaced since, is covered by an
  entry of its context with the same or a stronger usage holding it or a
  later fence of its timeline.
* I2 (one fence per context per usage, as the kernel keeps it): an entry
  is only ever replaced by a fence of its own context that is later or the
  same, or because it was signalled; so for each (context, usage) the
  unsignalled fences present are all implied by the newest one. The kernel
  does *not* guarantee a single entry: reusing an earlier signalled slot can
  leave an older entry of the same context behind (see
  ``test_signalled_slot_reuse_can_leave_an_older_entry``).
* I3 (usage order): the locked iteration at U yields exactly the entries of
  usage <= U in list order; ``get_fences(U)`` and the lockless iterator
  yield the unsignalled subset, in the same order.
* I4 (pruning): ``get_fences``, the lockless iterator, ``test_signaled``,
  growing the list and ``copy_fences`` never return or keep a signalled fence.
* I5 (capacity): ``num_fences <= max_fences``; a reserved slot is always
  there for the ``add_fence`` that follows.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

import dmabufsim as ds
from dmabufsim import dma
from dmabufsim.dma import DmaResv, DmaResvUsage
from dmabufsim.dma.fence import DmaFence
from dmabufsim.locking.ww_mutex import WWAcquireCtx
from tests.helpers import run_first

USAGES = list(DmaResvUsage)
N_CTX = 4

op = st.one_of(
    st.tuples(st.just("reserve"), st.integers(1, 3)),
    st.tuples(st.just("add"), st.integers(0, N_CTX - 1), st.sampled_from(USAGES), st.booleans()),
    st.tuples(st.just("replace"), st.integers(0, N_CTX - 1), st.sampled_from(USAGES)),
    st.tuples(st.just("signal"), st.integers(0, N_CTX - 1)),
    st.tuples(st.just("relock"),),
    st.tuples(st.just("copy"),),
)


def check(resv: DmaResv, added: dict[int, tuple[DmaFence, DmaResvUsage]]) -> None:
    fobj = resv.fences
    entries = list(fobj.entries) if fobj is not None else []
    # I5
    if fobj is not None:
        assert len(entries) <= fobj.max_fences
    # I1
    for f, u in added.values():
        if f.signaled_flag:
            continue
        assert any(
            g.context == f.context and v <= u and (g is f or g.seqno > f.seqno) for g, v in entries
        ), f"fence {f} lost"
    # I2
    newest: dict[tuple[int, int], DmaFence] = {}
    for g, v in entries:
        key = (g.context, int(v))
        if key not in newest or g.seqno > newest[key].seqno:
            newest[key] = g
    for g, v in entries:
        n = newest[(g.context, int(v))]
        assert g is n or n.is_later(g), "two unordered fences of one context"
    # I3 + I4
    for u in USAGES:
        locked = list(resv.for_each_fence(u))
        assert locked == [(g, v) for g, v in entries if v <= u]
        live = [g for g, v in entries if v <= u and not g.signaled_flag]
        got = resv.get_fences(u)
        assert got == live
        assert not any(g.signaled_flag for g in got)
        for g in got:
            g.put()
        it = resv.iter_unlocked(u)
        assert list(it) == live
        assert resv.test_signaled(u) == (not live)


@settings(max_examples=60, deadline=None)
@given(st.lists(op, min_size=1, max_size=25))
def test_any_sequence_keeps_the_invariants(ops: list[tuple[object, ...]]) -> None:
    def scenario(k: ds.Kernel) -> None:
        tls = [dma.FenceContext(f"t{i}") for i in range(N_CTX)]
        latest: list[DmaFence | None] = [None] * N_CTX
        every: list[DmaFence] = []
        added: dict[int, tuple[DmaFence, DmaResvUsage]] = {}
        resv = DmaResv("bo")
        other = DmaResv("other")
        ctx = WWAcquireCtx(dma.reservation_ww_class)  # two objects held at once need a context
        resv.lock(ctx)
        n_pt = 0
        for o in ops:
            kind = o[0]
            if kind == "reserve":
                n = o[1]
                assert isinstance(n, int)
                before = resv.fences
                resv.reserve_fences(n)
                fobj = resv.fences
                assert fobj is not None and fobj.max_fences - len(fobj.entries) >= n
                if fobj is not before:  # I4: a grown list holds no signalled fence
                    assert not any(g.signaled_flag for g, _ in fobj.entries)
            elif kind == "add":
                _, i, usage, new = o
                assert isinstance(i, int) and isinstance(usage, DmaResvUsage)
                f = latest[i]
                if new or f is None:
                    f = tls[i].create()
                    latest[i] = f
                    every.append(f)
                resv.reserve_fences(1)
                resv.add_fence(f, usage)
                prev = added.get(f.oid)
                added[f.oid] = (f, usage if prev is None else min(prev[1], usage))
            elif kind == "replace":
                _, i, usage = o
                assert isinstance(i, int) and isinstance(usage, DmaResvUsage)
                n_pt += 1
                pt = dma.FenceContext(f"pt{n_pt}").create()
                every.append(pt)
                resv.replace_fences(tls[i].context, pt, usage)
                for key, (f, _) in list(added.items()):
                    if f.context == tls[i].context:
                        del added[key]
                assert resv.fences is None or all(g.context != tls[i].context for g, _ in resv.fences.entries)
            elif kind == "signal":
                _, i = o
                pending = [f for f in every if f.context == tls[i].context and not f.signaled_flag]
                if pending:
                    pending[0].signal()  # a timeline signals in order
            elif kind == "relock":
                resv.unlock()
                resv.lock(ctx)
            elif kind == "copy":
                other.lock(ctx)
                other.copy_fences(resv)
                assert other.fences is not None
                live = [(g, v) for g, v in (resv.fences.entries if resv.fences else []) if not g.signaled_flag]
                assert other.fences.entries == live
                other.unlock()
            check(resv, added)
        resv.unlock()
        ctx.fini()
        for f in every:
            if not f.signaled_flag:
                f.signal()

    ex = run_first(scenario)
    assert ex.findings == [], [str(f) for f in ex.findings]


def test_signalled_slot_reuse_can_leave_an_older_entry() -> None:
    """The kernel's add_fence reuses the *first* matching slot: a signalled one may come
    before an older same-context entry, which then stays (harmless: it is implied)."""

    def scenario(k: ds.Kernel) -> None:
        a, b = dma.FenceContext("a"), dma.FenceContext("b")
        b1, a2, a3 = b.create(), a.create(), a.create()
        resv = DmaResv()
        with resv:
            resv.reserve_fences(3)
            resv.add_fence(b1, DmaResvUsage.BOOKKEEP)
            resv.add_fence(a2, DmaResvUsage.READ)
            b1.signal()
            resv.add_fence(a3, DmaResvUsage.READ)
            assert resv.fences is not None
            assert [(f.timeline_name, f.seqno, u.name) for f, u in resv.fences.entries] == [
                ("a", 2, "READ"),
                ("a", 1, "READ"),
            ]
        a2.signal()
        a3.signal()

    assert run_first(scenario).findings == []
