"""dma_fence R8 bookkeeping stays bounded when fences are waited on *before* they signal.

The soak pattern: a submitter waits on each job's fence while it
is still pending; an interrupt signals it later. Signalled fences can no
longer be never-signalled, so the watched list drops them as it grows; a
waited fence that never signals is still reported, exactly as in a short run.
"""

from __future__ import annotations

import dmabufsim as ds
from dmabufsim import dma
from dmabufsim.dma import fence as fence_mod
from tests.helpers import run_first

US = 1000


def _soak(jobs: int, sizes: list[int]) -> ds.Execution:
    def scenario(k: ds.Kernel) -> None:
        tl = dma.FenceContext("soak", driver="gpu")
        lost = tl.create()  # waited on (with a timeout) and never signalled
        assert lost.wait_timeout(False, 10 * US) == 0
        for _ in range(jobs):
            f = tl.create()
            k.add_timer(k.now + US, lambda f=f: k.raise_irq(f.signal, name="gpu-irq"))
            assert f.wait() == 0  # depended on while pending, then signalled by the irq
            sizes.append(len(fence_mod.depended_fences(k)))

    return run_first(scenario)


def test_waited_then_signalled_fences_do_not_accumulate() -> None:
    sizes: list[int] = []
    ex = _soak(2 * fence_mod._PRUNE_MIN + 10, sizes)
    assert max(sizes) <= fence_mod._PRUNE_MIN
    assert sizes[-1] < 20  # pruned down to the lost fence and the few since the last prune
    assert [f.kind for f in ex.findings] == ["fence-never-signalled"]


def test_the_never_signalled_fence_is_reported_as_in_a_short_run() -> None:
    short = _soak(3, [])
    long = _soak(2 * fence_mod._PRUNE_MIN + 10, [])

    def key(ex: ds.Execution) -> list[tuple[str, str, str, dict[str, object]]]:
        return [(f.kind, f.title, f.signature, f.details) for f in ex.findings]

    assert key(long) == key(short)
    (f,) = short.findings
    assert f.details["seqno"] == 1 and f.details["timeline"] == "soak" and f.details["driver"] == "gpu"
    assert f.details["callbacks"] == 0
