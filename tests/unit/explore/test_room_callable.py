"""One ``import dmabufsim as ds`` reaches the explorer: ``ds.explore(...)`` runs it, ``ds.explore.X`` names its room."""

from __future__ import annotations

import dmabufsim as ds
from dmabufsim.explore import OptimalDPOR, Report
from dmabufsim.explore import explore as explore_fn


def _abba(k: ds.Kernel) -> None:
    def worker(x: ds.Mutex, y: ds.Mutex) -> None:
        with x, y:
            pass

    a, b = ds.Mutex("A"), ds.Mutex("B")
    k.spawn(worker, a, b, name="t1")
    k.spawn(worker, b, a, name="t2")


def test_ds_explore_is_the_entry_point_and_the_room() -> None:
    rep = ds.explore(_abba, strategy="odpor", budget=50)
    assert isinstance(rep, Report)
    assert [f.kind for f in rep.findings] == ["circular-locking"]
    same = explore_fn(_abba, strategy="odpor", budget=50)
    assert [f.token for f in rep.findings] == [f.token for f in same.findings]
    assert ds.explore.OptimalDPOR is OptimalDPOR is ds.OptimalDPOR
    assert ds.explore.explore is explore_fn
