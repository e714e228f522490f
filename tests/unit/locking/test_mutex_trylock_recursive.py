"""``mutex_trylock_recursive`` (mutex R7)."""

from __future__ import annotations

import dmabufsim as ds
from dmabufsim.locking.mutex import MUTEX_TRYLOCK_FAILED, MUTEX_TRYLOCK_RECURSIVE, MUTEX_TRYLOCK_SUCCESS
from tests.helpers import run_first


def test_trylock_recursive_answers_per_owner() -> None:
    got: list[int] = []

    def scenario(k: ds.Kernel) -> None:
        m = ds.Mutex("struct_mutex")
        got.append(m.trylock_recursive())  # free: taken
        got.append(m.trylock_recursive())  # ours: recursive, nothing taken
        done = ds.Completion("other")

        def other() -> None:
            got.append(m.trylock_recursive())  # someone else's: failed
            done.complete()

        k.spawn(other, name="other")
        done.wait_for_completion()
        m.unlock()

    ex = run_first(scenario)
    assert ex.findings == []
    assert got == [MUTEX_TRYLOCK_SUCCESS, MUTEX_TRYLOCK_RECURSIVE, MUTEX_TRYLOCK_FAILED]
